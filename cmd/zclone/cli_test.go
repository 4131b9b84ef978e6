package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func zclone(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestConvention(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		if code, out, errOut := zclone(args...); code != 0 || !strings.HasPrefix(out, "usage: zclone") || errOut != "" {
			t.Errorf("%q: exit %d, stdout %.30q, stderr %q", args, code, out, errOut)
		}
	}
	if code, out, _ := zclone("--version"); code != 0 || !strings.HasPrefix(out, "zclone ") {
		t.Errorf("--version: exit %d, stdout %q", code, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "missing command"},
		{[]string{"frob"}, `unknown command "frob"`},
		{[]string{"get"}, "get takes 1 argument(s), got 0"},
		{[]string{"set", "k", ""}, "empty value deletes"},
		{[]string{"get", "k", "--ttl", "x"}, "invalid value"},
		{[]string{"--endpoint-prefix", "tcp://nohostport", "get", "k"}, "--endpoint-prefix"},
	} {
		code, out, errOut := zclone(tc.args...)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tc.want) ||
			!strings.HasSuffix(errOut, "(run 'zclone --help' for usage)\n") {
			t.Errorf("%q: exit %d, stderr %q; want 2 and one line with %q", tc.args, code, errOut, tc.want)
		}
	}
}

func TestNotRunning(t *testing.T) {
	name := fmt.Sprintf("absent-%x", rand.Uint64())
	start := time.Now()
	code, _, errOut := zclone("-b", name, "get", "k")
	if d := time.Since(start); d > 5*time.Second { // a hang guard
		t.Fatalf("took %v", d)
	}
	want := fmt.Sprintf("zclone: no broker %q at ipc://@/clone/%s/snapshot (is zbroker running?)\n", name, name)
	if code != 1 || errOut != want {
		t.Fatalf("exit %d, stderr %q; want 1, %q", code, errOut, want)
	}
}

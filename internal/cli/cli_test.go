package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zbroker/zbroker/zmtp"
)

func newCommand() (*Command, *bytes.Buffer, *bytes.Buffer) {
	var stdout, stderr bytes.Buffer
	return &Command{Name: "tool", Usage: "usage: tool\n", Stdout: &stdout, Stderr: &stderr}, &stdout, &stderr
}

func TestParseInterspersed(t *testing.T) {
	cmd, _, _ := newCommand()
	fs := cmd.FlagSet()
	var broker string
	BrokerFlag(fs, &broker)
	lines := fs.Bool("lines", false, "")
	words, err := Parse(fs, []string{"read", "-b", "x", "pipe", "--lines", "--", "--not-a-flag"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"read", "pipe", "--not-a-flag"}; strings.Join(words, " ") != strings.Join(want, " ") || broker != "x" || !*lines {
		t.Fatalf("words %q broker %q lines %v; want %q, x, true", words, broker, *lines, want)
	}
}

func TestExitConvention(t *testing.T) {
	for _, tc := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"--help"}, 0, "usage: tool\n", ""},
		{[]string{"-h"}, 0, "usage: tool\n", ""},
		{[]string{"--version"}, 0, "tool ", ""},
		{[]string{"--bogus"}, 2, "", "tool: flag provided but not defined: -bogus (run 'tool --help' for usage)\n"},
		{[]string{"--broker"}, 2, "", "tool: flag needs an argument: -broker (run 'tool --help' for usage)\n"},
	} {
		cmd, stdout, stderr := newCommand()
		fs := cmd.FlagSet()
		var broker string
		BrokerFlag(fs, &broker)
		_, err := Parse(fs, tc.args)
		code := cmd.Exit(err)
		if code != tc.code || !strings.HasPrefix(stdout.String(), tc.stdout) || stderr.String() != tc.stderr ||
			(tc.stdout == "" && stdout.Len() > 0) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
		}
	}
	cmd, _, stderr := newCommand()
	if code := cmd.Exit(errors.New("it broke\nbadly")); code != 1 || stderr.String() != "tool: it broke badly\n" {
		t.Errorf("failure: exit %d, stderr %q; want 1 and one line", code, stderr)
	}
	cmd, _, stderr = newCommand()
	if code := cmd.Exit(Usagef("missing %s", "PIPE")); code != 2 || stderr.String() != "tool: missing PIPE (run 'tool --help' for usage)\n" {
		t.Errorf("usage error: exit %d, stderr %q", code, stderr)
	}
}

func TestProbe(t *testing.T) {
	ep := "ipc://@zbroker-cli-probe-" + strings.ReplaceAll(t.Name(), "/", "-") + time.Now().Format("150405.000000000")
	start := time.Now()
	err := Probe(context.Background(), ep, 0, nil)
	if !errors.Is(err, ErrNotRunning) {
		t.Fatalf("nothing listening: %v, want ErrNotRunning", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("refusal took %v", d) // a hang guard, not a timing assertion
	}
	s, err := zmtp.Listen(ep, zmtp.Options{SocketType: "ROUTER"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	go func() {
		for b := range s.Events() {
			b.Release()
		}
	}()
	if err := Probe(context.Background(), ep, 0, nil); err != nil {
		t.Fatalf("ROUTER listening: %v", err)
	}
}

package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// The cluster comparison runs on a one-node cluster and measures both
// sides: every rate in its row is positive.
func TestClusterComparison(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--cluster", "1", "--sizes", "64", "--duration", "300ms", "--warmup", "100ms"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a header and one row:\n%s", out.String())
	}
	f := strings.Fields(lines[1])
	if len(f) != 8 || f[0] != "1" || f[1] != "(R1)" || f[2] != "64B" {
		t.Fatalf("row %q", lines[1])
	}
	for _, v := range f[3:6] {
		if n, err := strconv.ParseFloat(v, 64); err != nil || n <= 0 {
			t.Fatalf("rate %q in row %q", v, lines[1])
		}
	}
}

func TestClusterFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--cluster", "0"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "node count") {
		t.Fatalf("--cluster 0: exit %d, %q", code, errOut.String())
	}
}

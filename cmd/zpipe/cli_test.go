package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/testsupport"
	"github.com/zbroker/zbroker/zpipes"
)

// A writer held back by a full pipe says so, and --timeout ends the wait
// with exit 1.
func TestHeldWriterNoticeAndTimeout(t *testing.T) {
	name := fmt.Sprintf("test-held-%x", rand.Uint64())
	srv, err := zpipes.Start(zpipes.Options{Name: name, PipeLimit: 64 << 10, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	defer func(d time.Duration) { holdNotice = d }(holdNotice)
	holdNotice = 50 * time.Millisecond
	var errOut testsupport.Buffer
	code := run([]string{"-b", name, "write", "--timeout", "2s", "--size", "16KiB", "full"},
		bytes.NewReader(make([]byte, 4<<20)), io.Discard, &errOut)
	lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
	if code != 1 || len(lines) != 2 || !strings.Contains(lines[0], `pipe "full" is full`) ||
		lines[1] != "zpipe: gave up after --timeout 2s" {
		t.Fatalf("exit %d, stderr %q; want 1, the full-pipe notice, then the timeout", code, errOut.String())
	}
}

// ping --wait waits for a broker that starts later.
func TestPingWait(t *testing.T) {
	name := fmt.Sprintf("test-wait-%x", rand.Uint64())
	done := make(chan int, 1)
	var out, errOut testsupport.Buffer
	go func() { done <- run([]string{"-b", name, "ping", "--wait", "20s"}, nil, &out, &errOut) }()
	time.Sleep(200 * time.Millisecond) // let ping find no broker first
	srv, err := zpipes.Start(zpipes.Options{Name: name, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if code := <-done; code != 0 || !strings.Contains(out.String(), "is up") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	code, _, stderr := zpipe(t, nil, "-b", name+"-none", "ping", "--wait", "100ms")
	if code != 1 || !strings.Contains(stderr, "after waiting 100ms") {
		t.Fatalf("nobody starts: exit %d, stderr %q", code, stderr)
	}
}

// A broker that is not running is reported at once (the bound is a hang
// guard, not a measurement), on one line, exit 1.
func TestNotRunningIsQuick(t *testing.T) {
	start := time.Now()
	code, _, stderr := zpipe(t, []byte("x"), "-b", fmt.Sprintf("none-%x", rand.Uint64()), "write", "p")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
	if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "no broker") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestVersionAndUsageLine(t *testing.T) {
	if code, out, stderr := zpipe(t, nil, "--version"); code != 0 || !strings.HasPrefix(out, "zpipe ") || stderr != "" {
		t.Fatalf("--version: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	code, _, stderr := zpipe(t, nil, "write")
	if want := "zpipe: write: missing pipe name (run 'zpipe --help' for usage)\n"; code != 2 || stderr != want {
		t.Fatalf("usage error: exit %d, stderr %q; want 2, %q", code, stderr, want)
	}
}

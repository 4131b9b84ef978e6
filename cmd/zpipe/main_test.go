package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/zbroker/zbroker/zpipes"
)

func startBroker(t *testing.T) string {
	t.Helper()
	name, _ := startBrokerServer(t)
	return name
}

func startBrokerServer(t *testing.T) (string, *zpipes.Server) {
	t.Helper()
	name := strings.ReplaceAll(t.Name(), "/", "-")
	if len(name) > 40 {
		name = name[:40]
	}
	name = fmt.Sprintf("test-%s-%d-%x", name, os.Getpid(), rand.Uint64())
	srv, err := zpipes.Start(zpipes.Options{Name: name, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return name, srv
}

// zpipe runs the command in-process and returns its exit status and
// output.
func zpipe(t *testing.T, stdin []byte, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, bytes.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func mustRun(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	code, out, errOut := zpipe(t, stdin, args...)
	if code != 0 {
		t.Fatalf("zpipe %s: exit %d, stderr %q", strings.Join(args, " "), code, errOut)
	}
	if errOut != "" {
		t.Errorf("zpipe %s: unexpected stderr %q", strings.Join(args, " "), errOut)
	}
	return out
}

func TestLinesRoundTrip(t *testing.T) {
	b := startBroker(t)
	var in strings.Builder
	for i := 0; i < 1000; i++ {
		if i%100 == 7 {
			in.WriteString("\n") // empty lines are data, not end of stream
			continue
		}
		fmt.Fprintf(&in, "line %d\n", i)
	}
	mustRun(t, []byte(in.String()), "-b", b, "write", "--lines", "numbers")
	out := mustRun(t, nil, "-b", b, "read", "--lines", "numbers")
	if out != in.String() {
		t.Fatalf("read back %d bytes, want the %d written", len(out), in.Len())
	}
}

func TestLinesLastLineWithoutNewline(t *testing.T) {
	b := startBroker(t)
	mustRun(t, []byte("a\n\nb"), "write", "--lines", "p", "--broker", b)
	if out := mustRun(t, nil, "read", "--lines", "p", "-b", b); out != "a\n\nb\n" {
		t.Fatalf("got %q", out)
	}
	// Without --lines, read prints the chunks as they are.
	mustRun(t, []byte("a\n\nb"), "write", "--lines", "p", "--broker", b)
	if out := mustRun(t, nil, "read", "p", "-b", b); out != "a\n\nb" {
		t.Fatalf("got %q", out)
	}
}

func TestBinarySizeRoundTrip(t *testing.T) {
	b := startBroker(t)
	data := make([]byte, 300_001)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	data[0], data[1] = 0, '\n'
	mustRun(t, data, "-b", b, "write", "--size", "4KiB", "--window", "8", "bin")
	out := mustRun(t, nil, "-b", b, "read", "bin")
	if !bytes.Equal([]byte(out), data) {
		t.Fatalf("read %d bytes, differing from the %d written", len(out), len(data))
	}
	// Default chunk size, input a multiple of it, then an empty input:
	// an empty stream is just its end-of-stream chunk.
	big := bytes.Repeat([]byte{0xff, 0}, 64<<10)
	mustRun(t, big, "-b", b, "write", "bin")
	if out := mustRun(t, nil, "-b", b, "read", "bin"); out != string(big) {
		t.Fatalf("read %d bytes, want %d", len(out), len(big))
	}
	mustRun(t, nil, "-b", b, "write", "bin")
	if out := mustRun(t, nil, "-b", b, "read", "bin"); out != "" {
		t.Fatalf("empty stream read as %d bytes", len(out))
	}
}

func TestChunkSizes(t *testing.T) {
	b := startBroker(t)
	mustRun(t, []byte("abcdefghij"), "-b", b, "write", "--size", "4", "--no-eos", "p")
	// One chunk per line shows the chunking: 4 + 4 + 2 bytes.
	if out := mustRun(t, nil, "-b", b, "read", "--lines", "--count", "3", "p"); out != "abcd\nefgh\nij\n" {
		t.Fatalf("got %q", out)
	}
}

func TestEndOfStream(t *testing.T) {
	b, srv := startBrokerServer(t)
	mustRun(t, []byte("one\ntwo\n"), "-b", b, "write", "--lines", "p")
	if st := srv.Stats(); st.Chunks != 3 {
		t.Fatalf("pipe holds %d chunks, want 2 lines and the end-of-stream chunk", st.Chunks)
	}
	if out := mustRun(t, nil, "-b", b, "read", "--lines", "p"); out != "one\ntwo\n" {
		t.Fatalf("first stream: %q", out)
	}
	if st := srv.Stats(); st.Chunks != 0 {
		t.Fatalf("read left %d chunks", st.Chunks)
	}

	// --count stops early and takes no more chunks than it prints.
	mustRun(t, []byte("three\nfour\nfive\n"), "-b", b, "write", "--lines", "--no-eos", "p")
	if out := mustRun(t, nil, "-b", b, "read", "--count", "1", "p"); out != "three\n" {
		t.Fatalf("count 1: %q", out)
	}
	if st := srv.Stats(); st.Chunks != 2 {
		t.Fatalf("pipe holds %d chunks after --count 1, want 2", st.Chunks)
	}
	if out := mustRun(t, nil, "-b", b, "read", "--count", "2", "p"); out != "four\nfive\n" {
		t.Fatalf("count 2: %q", out)
	}

	// --follow reads across end-of-stream chunks, which it skips.
	mustRun(t, []byte("six\n"), "-b", b, "write", "--lines", "p")
	mustRun(t, []byte("seven\n"), "-b", b, "write", "--lines", "p")
	out := mustRun(t, nil, "-b", b, "read", "--follow", "--count", "2", "p")
	if out != "six\nseven\n" && out != "seven\nsix\n" {
		t.Fatalf("follow: %q", out)
	}
	// Both end-of-stream chunks are still there.
	for i := 0; i < 2; i++ {
		if out := mustRun(t, nil, "-b", b, "read", "p"); out != "" {
			t.Fatalf("after follow: %q", out)
		}
	}
	if st := srv.Stats(); st.Chunks != 0 || st.Pipes != 0 {
		t.Fatalf("stats %+v, want the pipe released", st)
	}
}

// Streams of writers whose chunks are in the pipe together interleave:
// the broker serves writers round robin (hence "one stream at a time").
func TestSequentialWritersInterleave(t *testing.T) {
	b := startBroker(t)
	mustRun(t, []byte("a1\na2\n"), "-b", b, "write", "--lines", "p")
	mustRun(t, []byte("b1\n"), "-b", b, "write", "--lines", "p")
	out := mustRun(t, nil, "-b", b, "read", "--follow", "--count", "3", "p")
	if out != "a1\nb1\na2\n" {
		t.Fatalf("got %q, want the writers' chunks round robin", out)
	}
}

func TestNoBroker(t *testing.T) {
	name := fmt.Sprintf("missing-%x", rand.Uint64())
	for _, args := range [][]string{
		{"-b", name, "write", "p"},
		{"-b", name, "read", "p"},
		{"-b", name, "ping"},
	} {
		code, out, errOut := zpipe(t, []byte("data\n"), args...)
		want := fmt.Sprintf("zpipe: no broker %q at ipc://@/zpipes/%s (is zbroker running?)\n", name, name)
		if code != 1 || errOut != want || out != "" {
			t.Errorf("zpipe %v: exit %d, stderr %q, stdout %q; want exit 1 and %q", args, code, errOut, out, want)
		}
	}
	ep := "ipc://" + t.TempDir() + "/none"
	code, _, errOut := zpipe(t, nil, "--endpoint", ep, "ping")
	if want := "zpipe: no broker at " + ep + " (is zbroker running?)\n"; code != 1 || errOut != want {
		t.Errorf("--endpoint: exit %d, stderr %q, want %q", code, errOut, want)
	}
}

func TestPing(t *testing.T) {
	b := startBroker(t)
	out := mustRun(t, nil, "-b", b, "ping")
	if !strings.HasPrefix(out, fmt.Sprintf("broker %q at ipc://@/zpipes/%s is up", b, b)) {
		t.Fatalf("ping printed %q", out)
	}
}

func TestBrokerRefusal(t *testing.T) {
	b, srv := startBrokerServer(t)
	// Another connection holds the reader role of the pipe.
	ctx := context.Background()
	c, err := zpipes.DialEndpoint(ctx, srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect() })
	if err := c.Open(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if err := c.Write(ctx, "p", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(ctx, "p"); err != nil { // now it is the reader
		t.Fatal(err)
	}
	code, out, errOut := zpipe(t, nil, "-b", b, "read", "p")
	if want := "zpipe: broker refused READ \"p\": pipe already has a reader\n"; code != 1 || errOut != want || out != "" {
		t.Fatalf("exit %d, stderr %q; want 1 and %q", code, errOut, want)
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "missing command"},
		{[]string{"frobnicate", "p"}, "unknown command"},
		{[]string{"write"}, "missing pipe name"},
		{[]string{"read", "a", "b"}, "one pipe name"},
		{[]string{"ping", "p"}, "no arguments"},
		{[]string{"write", "--lines", "--size", "10", "p"}, "exclude"},
		{[]string{"write", "--size", "0", "p"}, "--size"},
		{[]string{"write", "--size", "lots", "p"}, "bad size"},
		{[]string{"write", "--count", "3", "p"}, "does not take --count"},
		{[]string{"read", "--size", "3", "p"}, "does not take --size"},
		{[]string{"read", "--bogus", "p"}, "not defined"},
		{[]string{"write", "--window", "0", "p"}, "--window"},
		{[]string{"-b", "", "ping"}, "empty broker"},
		{[]string{"read", strings.Repeat("n", 256)}, "pipe names are 1 to 255 bytes"},
	} {
		code, out, errOut := zpipe(t, nil, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "zpipe --help") || out != "" {
			t.Errorf("zpipe %q: exit %d, stderr %q; want exit 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"write", "--help"}} {
		code, out, errOut := zpipe(t, nil, args...)
		if code != 0 || !strings.HasPrefix(out, "usage: zpipe") || errOut != "" {
			t.Errorf("zpipe %q: exit %d, stdout %.40q, stderr %q", args, code, out, errOut)
		}
	}
}

// "--" lets a pipe name start with a dash.
func TestDashPipeName(t *testing.T) {
	b := startBroker(t)
	mustRun(t, []byte("x\n"), "-b", b, "write", "--lines", "--", "-odd")
	if out := mustRun(t, nil, "-b", b, "read", "--", "-odd"); out != "x\n" {
		t.Fatalf("got %q", out)
	}
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, fmt.Errorf("disk on fire")
	}
	r.n--
	return copy(p, "chunk\n"), nil
}

// Input that fails is reported, and no end-of-stream chunk marks the
// partial data as complete.
func TestInputErrorSendsNoEOS(t *testing.T) {
	b, srv := startBrokerServer(t)
	var errOut bytes.Buffer
	code := run([]string{"-b", b, "write", "--lines", "p"}, &failingReader{n: 2}, io.Discard, &errOut)
	if code != 1 || errOut.String() != "zpipe: reading input: disk on fire\n" {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if st := srv.Stats(); st.Chunks != 2 {
		t.Fatalf("pipe holds %d chunks, want the 2 lines and no end-of-stream chunk", st.Chunks)
	}
	if out := mustRun(t, nil, "-b", b, "read", "--count", "2", "p"); out != "chunk\nchunk\n" {
		t.Fatalf("got %q", out)
	}
}

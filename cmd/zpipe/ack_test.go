package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zbroker/zbroker/zmtp"
)

// TestMain lets a test run this binary as the zpipe command, to kill it.
func TestMain(m *testing.M) {
	if os.Getenv("ZPIPE_TEST_AS_ZPIPE") == "1" {
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func numbered(n int) []byte {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return []byte(b.String())
}

// lineNumber parses "line N".
func lineNumber(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimPrefix(s, "line "))
	if err != nil || !strings.HasPrefix(s, "line ") {
		t.Fatalf("unexpected line %q", s)
	}
	return n
}

// closingWriter takes n writes, then fails as a closed pipe does.
type closingWriter struct {
	n   int
	out strings.Builder
}

func (w *closingWriter) Write(p []byte) (int, error) {
	if w.n == 0 {
		return 0, syscall.EPIPE
	}
	w.n--
	return w.out.Write(p)
}

// readAfterDeath reads pipe p to its end once the broker has seen the
// last reader go.
func readAfterDeath(t *testing.T, name string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, out, errOut := zpipe(t, nil, "-b", name, "read", "--lines", "--timeout", "5s", "p")
		if code == 0 {
			return out
		}
		if !strings.Contains(errOut, "already has a reader") || time.Now().After(deadline) {
			t.Fatalf("read after the last reader's death: exit %d, %s", code, errOut)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// "zpipe read | head -3": the chunk zpipe could not write goes back to the
// pipe (the broker acknowledges readers), so the next read starts there.
func TestReadOutputClosedLosesNothing(t *testing.T) {
	name := startBroker(t)
	mustRun(t, numbered(10), "-b", name, "write", "--lines", "p")
	out := &closingWriter{n: 3}
	if code := run([]string{"-b", name, "read", "--lines", "p"}, nil, out, &closingWriter{n: 100}); code != 1 {
		t.Fatalf("read into a closed output: exit %d, want 1", code)
	}
	if got := out.out.String(); got != string(numbered(3)) {
		t.Fatalf("read wrote %q", got)
	}
	rest := readAfterDeath(t, name)
	if want := strings.TrimPrefix(string(numbered(10)), string(numbered(3))); rest != want {
		t.Fatalf("next read got %q, want lines 3..9", rest)
	}
}

// "zpipe read | consumer" with zpipe SIGKILLed: what zpipe wrote reaches
// the consumer, the next read starts at most two chunks back (those
// written but not yet acknowledged), and nothing is lost.
func TestReadKilledLosesNothing(t *testing.T) {
	name := startBroker(t)
	const total = 2000
	mustRun(t, numbered(total), "-b", name, "write", "--lines", "p")
	cmd := exec.Command(os.Args[0], "-b", name, "read", "--lines", "p")
	cmd.Env = append(os.Environ(), "ZPIPE_TEST_AS_ZPIPE=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	got := 0
	for got < 100 && lines.Scan() {
		if n := lineNumber(t, lines.Text()); n != got {
			t.Fatalf("zpipe read printed line %d, want %d", n, got)
		}
		got++
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() { // what it wrote before it died
		if n := lineNumber(t, lines.Text()); n != got {
			t.Fatalf("zpipe read printed line %d, want %d", n, got)
		}
		got++
	}
	var exit *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &exit) {
		t.Fatalf("killed zpipe: %v", err)
	}
	rest := strings.Split(strings.TrimSuffix(readAfterDeath(t, name), "\n"), "\n")
	first := lineNumber(t, rest[0])
	if first > got || first < got-2 {
		t.Fatalf("zpipe printed lines 0..%d before it was killed; the next read starts at %d: want %d-2..%d", got-1, first, got, got)
	}
	for i, l := range rest {
		if n := lineNumber(t, l); n != first+i {
			t.Fatalf("next read: line %d is %q", i, l)
		}
	}
	if last := first + len(rest) - 1; last != total-1 {
		t.Fatalf("next read ended at line %d, want %d", last, total-1)
	}
	t.Logf("killed zpipe printed %d lines; the next read got %d again", got, got-first)
}

// oldBroker serves the original zpipes protocol without the extension,
// as a broker of before issue 15 did: OPEN with a third frame, and ACK,
// get ERROR. Its READs get chunks, then the end-of-stream chunk. It
// returns the endpoint and the commands it got, once the socket closes.
func oldBroker(t *testing.T, chunks ...string) (endpoint string, commands func() []string) {
	t.Helper()
	ep := fmt.Sprintf("ipc://@/zpipe-test-old-%d-%x", os.Getpid(), rand.Uint64())
	sock, err := zmtp.Listen(ep, zmtp.Options{SocketType: "ROUTER", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []string)
	go func() {
		var got []string
		for batch := range sock.Events() {
			for _, ev := range batch.Events {
				if ev.Type != zmtp.Message {
					continue
				}
				f := ev.Frames
				cmd := string(f[0])
				if len(f) > 2 {
					cmd += " " + string(f[2])
				}
				got = append(got, cmd)
				reply := [][]byte{[]byte("OK")}
				switch {
				case string(f[0]) == "OPEN" && len(f) != 2:
					reply = [][]byte{[]byte("ERROR"), fmt.Appendf(nil, "OPEN takes 2 frames, got %d", len(f))}
				case string(f[0]) == "READ" && len(chunks) > 0:
					reply, chunks = [][]byte{[]byte(chunks[0])}, chunks[1:]
				case string(f[0]) == "READ":
					reply = [][]byte{{}}
				case string(f[0]) != "OPEN" && string(f[0]) != "CLOSE":
					reply = [][]byte{[]byte("ERROR"), []byte("unknown command")}
				}
				ev.Conn.Send(reply)
			}
			batch.Release()
		}
		done <- got
	}()
	var got []string
	closed := false
	return ep, func() []string {
		if !closed {
			closed = true
			sock.Close()
			got = <-done
		}
		return got
	}
}

// Against a broker without acknowledging readers, read falls back to a
// plain OPEN and sends no ACK.
func TestReadFallsBackWithoutAckExtension(t *testing.T) {
	ep, commands := oldBroker(t, "one", "two")
	t.Cleanup(func() { commands() })
	out := mustRun(t, nil, "--endpoint", ep, "read", "--lines", "p")
	if out != "one\ntwo\n" {
		t.Fatalf("read from the old broker: %q", out)
	}
	want := "OPEN ACK|OPEN|READ|READ|READ|CLOSE"
	if got := strings.Join(commands(), "|"); got != want {
		t.Fatalf("commands sent: %s, want %s", got, want)
	}
}

package majordomo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zbroker/zbroker/zmtp"
)

// quietLogger keeps expected warnings (malformed messages, expired
// workers) out of the test output unless -v is given.
func quietLogger() *slog.Logger {
	if testing.Verbose() && os.Getenv("MDP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startBroker(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Name == "" {
		opts.Name = fmt.Sprintf("test-%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), rand.Uint64())
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	srv, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// waitStats polls the broker until ok holds.
func waitStats(t testing.TB, srv *Server, what string, ok func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := srv.Stats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: broker stats stuck at %+v", what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitWorkers(t testing.TB, srv *Server, n int) {
	t.Helper()
	waitStats(t, srv, fmt.Sprintf("%d workers", n), func(st Stats) bool { return st.Workers == n })
}

// goWorker runs a Go worker until the test ends.
func goWorker(t testing.TB, endpoint, service string, h Handler, opts WorkerOptions) context.CancelFunc {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	w, err := NewWorker(endpoint, service, h, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	stop := func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}

func echo(ctx context.Context, req *Request) [][]byte { return req.Body }

func newClient(t testing.TB, endpoint string, opts ClientOptions) *Client {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	c, err := NewClient(endpoint, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func strs(frames [][]byte) []string {
	s := make([]string, len(frames))
	for i, f := range frames {
		s[i] = string(f)
	}
	return s
}

func frames(parts ...string) [][]byte {
	f := make([][]byte, len(parts))
	for i, p := range parts {
		f[i] = []byte(p)
	}
	return f
}

func join(f [][]byte) string { return strings.Join(strs(f), "|") }

// rawPeer is a bare DEALER connection for speaking MDP by hand.
type rawPeer struct {
	t  testing.TB
	c  *zmtp.Conn
	in chan [][]byte
}

func dialRaw(t testing.TB, endpoint string) *rawPeer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := zmtp.Dial(ctx, endpoint, zmtp.Options{SocketType: "DEALER"})
	if err != nil {
		t.Fatal(err)
	}
	p := &rawPeer{t: t, c: c, in: make(chan [][]byte, 1024)}
	go func() {
		defer close(p.in)
		for {
			f, err := c.Recv()
			if err != nil {
				return
			}
			p.in <- f
		}
	}()
	t.Cleanup(func() { c.Close() })
	return p
}

// optIn asks for failure replies on this connection (MMIFailures).
func (p *rawPeer) optIn() *rawPeer {
	p.t.Helper()
	p.send("MDPC02", "\x01", MMIFailures, "on")
	expect(p.t, "opt-in answer", p.recv(), "MDPC02|\x03|"+MMIFailures+"|200")
	return p
}

func (p *rawPeer) send(parts ...string) {
	p.t.Helper()
	if err := p.c.Send(frames(parts...)); err != nil {
		p.t.Fatal(err)
	}
}

func (p *rawPeer) recv() string {
	p.t.Helper()
	select {
	case f, ok := <-p.in:
		if !ok {
			p.t.Fatal("connection closed")
		}
		return join(f)
	case <-time.After(5 * time.Second):
		p.t.Fatal("nothing received within 5s")
		return ""
	}
}

func (p *rawPeer) silent(d time.Duration) {
	p.t.Helper()
	select {
	case f := <-p.in:
		p.t.Fatalf("unexpected message %q", join(f))
	case <-time.After(d):
	}
}

func expect(t testing.TB, what, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// recvFrames returns the next message that is not a worker HEARTBEAT.
func (p *rawPeer) recvFrames() [][]byte {
	p.t.Helper()
	for {
		select {
		case f, ok := <-p.in:
			if !ok {
				p.t.Fatal("connection closed")
			}
			if m := join(f); m == "|MDPW01|\x04" || m == "MDPW02|\x05" {
				continue
			}
			return f
		case <-time.After(5 * time.Second):
			p.t.Fatal("nothing received within 5s")
			return nil
		}
	}
}

// dialUnix opens a raw socket to an ipc:// endpoint, below ZMTP.
func dialUnix(endpoint string) (net.Conn, error) {
	return net.DialTimeout("unix", strings.TrimPrefix(endpoint, "ipc://"), time.Second)
}

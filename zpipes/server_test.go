package zpipes

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/zbroker/zbroker/zmtp"
)

func startServer(t *testing.T, opts Options) *Server {
	t.Helper()
	opts.Name = fmt.Sprintf("unit-%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), rand.Uint64())
	srv, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

type peer struct {
	t *testing.T
	c *zmtp.Conn
}

func dialPeer(t *testing.T, srv *Server) *peer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := zmtp.Dial(ctx, srv.Endpoint(), zmtp.Options{SocketType: "DEALER"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &peer{t, c}
}

func (p *peer) send(parts ...string) {
	p.t.Helper()
	if err := p.c.Send(frames(parts...)); err != nil {
		p.t.Fatal(err)
	}
}

// recv returns the next reply joined with "|", failing after a timeout.
func (p *peer) recv() string {
	p.t.Helper()
	got := make(chan string, 1)
	go func() {
		f, err := p.c.Recv()
		if err != nil {
			got <- "recv error: " + err.Error()
			return
		}
		s := make([]string, len(f))
		for i := range f {
			s[i] = string(f[i])
		}
		got <- strings.Join(s, "|")
	}()
	select {
	case s := <-got:
		return s
	case <-time.After(5 * time.Second):
		p.t.Fatal("no reply within 5s")
		return ""
	}
}

// silent checks that no reply arrives for a short while.
func (p *peer) silent() {
	p.t.Helper()
	got := make(chan [][]byte, 1)
	go func() {
		f, _ := p.c.Recv()
		got <- f
	}()
	select {
	case f := <-got:
		p.t.Fatalf("unexpected reply %q", f)
	case <-time.After(200 * time.Millisecond):
	}
	// The goroutine above still waits; the peer is closed at cleanup and
	// must not be read again.
}

func (p *peer) do(parts ...string) string {
	p.t.Helper()
	p.send(parts...)
	return p.recv()
}

func expect(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}

func waitStats(t *testing.T, srv *Server, ok func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := srv.Stats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats never reached the expected state: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A READ that waits must not hold up later commands of the same
// connection, and replies still come back in command order.
func TestReadThenWriteOnOneConnection(t *testing.T) {
	srv := startServer(t, Options{})
	c := dialPeer(t, srv)
	c.send("OPEN", "p")
	c.send("READ", "p")
	c.send("WRITE", "p", "x")
	expect(t, "OPEN", c.recv(), "OK")
	expect(t, "READ", c.recv(), "x")
	expect(t, "WRITE", c.recv(), "OK")
}

func TestCloseAnswersWaitingRead(t *testing.T) {
	srv := startServer(t, Options{})
	c := dialPeer(t, srv)
	expect(t, "OPEN", c.do("OPEN", "p"), "OK")
	c.send("READ", "p")
	c.send("CLOSE", "p")
	expect(t, "READ", c.recv(), "ERROR|pipe closed while READ was waiting")
	expect(t, "CLOSE", c.recv(), "OK")
	waitStats(t, srv, func(s Stats) bool { return s.Pipes == 0 })
}

func TestSecondReaderRefusedUntilFirstCloses(t *testing.T) {
	srv := startServer(t, Options{})
	r1, r2, w := dialPeer(t, srv), dialPeer(t, srv), dialPeer(t, srv)
	for _, c := range []*peer{r1, r2, w} {
		expect(t, "OPEN", c.do("OPEN", "p"), "OK")
	}
	expect(t, "WRITE", w.do("WRITE", "p", "a"), "OK")
	expect(t, "READ 1", r1.do("READ", "p"), "a")
	expect(t, "READ 2", r2.do("READ", "p"), "ERROR|pipe already has a reader")
	expect(t, "CLOSE 1", r1.do("CLOSE", "p"), "OK")
	expect(t, "WRITE", w.do("WRITE", "p", "b"), "OK")
	expect(t, "READ 2 again", r2.do("READ", "p"), "b")
}

// A reader that dies with one READ waiting and a later READ already
// answered (held back behind the first) must not lose that answer's chunk.
func TestHeldReplyOfDeadReaderGoesBack(t *testing.T) {
	srv := startServer(t, Options{})
	w := dialPeer(t, srv)
	expect(t, "OPEN a", w.do("OPEN", "a"), "OK")
	expect(t, "OPEN b", w.do("OPEN", "b"), "OK")
	expect(t, "WRITE b", w.do("WRITE", "b", "kept"), "OK")
	r := dialPeer(t, srv)
	r.send("OPEN", "a")
	r.send("OPEN", "b")
	r.send("READ", "a") // waits: a is empty
	r.send("READ", "b") // answered, but held behind READ a
	expect(t, "OPEN a", r.recv(), "OK")
	expect(t, "OPEN b", r.recv(), "OK")
	waitStats(t, srv, func(s Stats) bool { return s.Chunks == 0 })
	r.c.Close()
	waitStats(t, srv, func(s Stats) bool { return s.Clients == 1 && s.Chunks == 1 })
	r2 := dialPeer(t, srv)
	expect(t, "OPEN b", r2.do("OPEN", "b"), "OK")
	expect(t, "READ b", r2.do("READ", "b"), "kept")
}

func TestPipeLimitWithholdsOK(t *testing.T) {
	srv := startServer(t, Options{PipeLimit: 1000})
	w, r := dialPeer(t, srv), dialPeer(t, srv)
	expect(t, "OPEN", w.do("OPEN", "p"), "OK")
	expect(t, "OPEN", r.do("OPEN", "p"), "OK")
	chunk := strings.Repeat("x", 400)
	// 400+64 bytes each: the third write finds 928 < 1000 and is taken,
	// the fourth finds 1392 and is held.
	for i := 0; i < 3; i++ {
		expect(t, "WRITE", w.do("WRITE", "p", chunk), "OK")
	}
	w.send("WRITE", "p", "held")
	waitStats(t, srv, func(s Stats) bool { return s.Stalled == 1 && s.Chunks == 3 })
	expect(t, "READ", r.do("READ", "p"), chunk)
	expect(t, "READ", r.do("READ", "p"), chunk)
	expect(t, "held WRITE", w.recv(), "OK")
	expect(t, "READ", r.do("READ", "p"), chunk)
	expect(t, "READ", r.do("READ", "p"), "held")
}

func TestTotalLimitReleasedByAnotherPipe(t *testing.T) {
	srv := startServer(t, Options{TotalLimit: 500})
	w, r := dialPeer(t, srv), dialPeer(t, srv)
	for _, n := range []string{"a", "b"} {
		expect(t, "OPEN", w.do("OPEN", n), "OK")
		expect(t, "OPEN", r.do("OPEN", n), "OK")
	}
	expect(t, "WRITE a", w.do("WRITE", "a", strings.Repeat("x", 600)), "OK")
	w.send("WRITE", "b", "small")
	waitStats(t, srv, func(s Stats) bool { return s.Stalled == 1 })
	expect(t, "READ a", r.do("READ", "a"), strings.Repeat("x", 600))
	expect(t, "WRITE b admitted", w.recv(), "OK")
	expect(t, "READ b", r.do("READ", "b"), "small")
}

func TestDeadWriterHeldWritesDroppedAndPipeReleased(t *testing.T) {
	srv := startServer(t, Options{PipeLimit: 100})
	w := dialPeer(t, srv)
	expect(t, "OPEN", w.do("OPEN", "p"), "OK")
	expect(t, "WRITE", w.do("WRITE", "p", strings.Repeat("x", 100)), "OK")
	w.send("WRITE", "p", "never acknowledged")
	waitStats(t, srv, func(s Stats) bool { return s.Stalled == 1 })
	w.c.Close()
	st := waitStats(t, srv, func(s Stats) bool { return s.Clients == 0 })
	if st.Stalled != 0 || st.Chunks != 1 || st.Pipes != 1 {
		t.Fatalf("after writer died: %+v, want the acknowledged chunk only", st)
	}
	r := dialPeer(t, srv)
	expect(t, "OPEN", r.do("OPEN", "p"), "OK")
	expect(t, "READ", r.do("READ", "p"), strings.Repeat("x", 100))
	expect(t, "CLOSE", r.do("CLOSE", "p"), "OK")
	waitStats(t, srv, func(s Stats) bool { return s.Pipes == 0 && s.QueuedBytes == 0 })
}

// A connection with too many replies owed stops being read, and is read
// again once they are paid.
func TestPendingRepliesBoundPausesClient(t *testing.T) {
	srv := startServer(t, Options{PendingLimit: 10 * slotCost})
	r, w := dialPeer(t, srv), dialPeer(t, srv)
	expect(t, "OPEN", r.do("OPEN", "p"), "OK")
	expect(t, "OPEN", w.do("OPEN", "p"), "OK")
	for i := 0; i < 50; i++ {
		r.send("READ", "p")
	}
	for i := 0; i < 50; i++ {
		expect(t, "WRITE", w.do("WRITE", "p", fmt.Sprint(i)), "OK")
	}
	for i := 0; i < 50; i++ {
		expect(t, "READ", r.recv(), fmt.Sprint(i))
	}
}

// One connection that sends more READs than a message-count bound would
// let through, then the WRITEs that feed them, is read to the end: its
// replies owed are bounded by bytes. With the old bound of 1,000 replies
// the broker stopped reading before the WRITEs and the client hung.
func TestPipelinedReadsBeforeWritesOnOneConnection(t *testing.T) {
	srv := startServer(t, Options{})
	c := dialPeer(t, srv)
	expect(t, "OPEN", c.do("OPEN", "p"), "OK")
	const n = 1500
	for i := 0; i < n; i++ {
		c.send("READ", "p")
	}
	for i := 0; i < n; i++ {
		c.send("WRITE", "p", fmt.Sprint(i))
	}
	for i := 0; i < n; i++ {
		expect(t, "READ", c.recv(), fmt.Sprint(i))
	}
	for i := 0; i < n; i++ {
		expect(t, "WRITE", c.recv(), "OK")
	}
}

func TestOpenIsIdempotentAndCloseNeedsOpen(t *testing.T) {
	srv := startServer(t, Options{})
	c := dialPeer(t, srv)
	expect(t, "OPEN", c.do("OPEN", "p"), "OK")
	expect(t, "OPEN again", c.do("OPEN", "p"), "OK")
	expect(t, "CLOSE", c.do("CLOSE", "p"), "OK")
	expect(t, "CLOSE again", c.do("CLOSE", "p"), "ERROR|pipe not open on this connection")
	expect(t, "WRITE", c.do("WRITE", "p", "x"), "ERROR|pipe not open on this connection")
	waitStats(t, srv, func(s Stats) bool { return s.Pipes == 0 })
}

func TestReaderGetsNothingAfterNothingWritten(t *testing.T) {
	srv := startServer(t, Options{})
	c := dialPeer(t, srv)
	expect(t, "OPEN", c.do("OPEN", "p"), "OK")
	c.send("READ", "p")
	c.silent()
}

// A pipe filled to its limit by a heavy writer still takes a light
// writer's chunk at once, and the reader gets it within a round.
func TestLightWriterNotHeldBehindHeavy(t *testing.T) {
	srv := startServer(t, Options{PipeLimit: 4096})
	heavy, light, r := dialPeer(t, srv), dialPeer(t, srv), dialPeer(t, srv)
	for _, c := range []*peer{heavy, light, r} {
		expect(t, "OPEN", c.do("OPEN", "p"), "OK")
	}
	for i := 0; i < 200; i++ {
		heavy.send("WRITE", "p", fmt.Sprintf("h%03d", i))
	}
	waitStats(t, srv, func(s Stats) bool { return s.Stalled > 0 })
	expect(t, "light WRITE", light.do("WRITE", "p", "light"), "OK")
	pos, h := -1, 0
	for i := 0; i < 200+1; i++ {
		got := r.do("READ", "p")
		if got == "light" {
			pos = i
			continue
		}
		expect(t, "heavy chunk", got, fmt.Sprintf("h%03d", h))
		h++
	}
	if pos < 0 || pos > 2 {
		t.Fatalf("light chunk read at position %d", pos)
	}
	for i := 0; i < 200; i++ {
		expect(t, "heavy OK", heavy.recv(), "OK")
	}
}

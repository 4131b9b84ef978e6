package zpipes

import (
	"strings"
	"testing"
)

// Raising the limits of a running broker admits the WRITEs they held back;
// lowering them holds back later WRITEs.
func TestSetLimitsAdmitsAndHolds(t *testing.T) {
	srv := startServer(t, Options{PipeLimit: 1000})
	w := dialPeer(t, srv)
	expect(t, "OPEN", w.do("OPEN", "p"), "OK")
	chunk := strings.Repeat("x", 400)
	for i := 0; i < 3; i++ {
		expect(t, "WRITE", w.do("WRITE", "p", chunk), "OK")
	}
	w.send("WRITE", "p", "held")
	waitStats(t, srv, func(s Stats) bool { return s.Stalled == 1 && s.Chunks == 3 })
	srv.SetLimits(1<<20, 0)
	expect(t, "held WRITE after raising the limit", w.recv(), "OK")
	if st := srv.Stats(); st.Stalled != 0 || st.Chunks != 4 {
		t.Fatalf("after raising: %+v, want 4 chunks and none held", st)
	}
	srv.SetLimits(100, 0)
	w.send("WRITE", "p", "held again")
	waitStats(t, srv, func(s Stats) bool { return s.Stalled == 1 && s.Chunks == 4 })
}

// Chunks are charged their pipe name too, since small ones keep it alive.
func TestChunkCostIncludesPipeName(t *testing.T) {
	srv := startServer(t, Options{PipeLimit: 1000})
	w := dialPeer(t, srv)
	name := strings.Repeat("n", 255)
	expect(t, "OPEN", w.do("OPEN", name), "OK")
	for i := 0; i < 10; i++ {
		w.send("WRITE", name, "")
	}
	// Each empty chunk costs 255+64 = 319: 0, 319, 638, 957 are under
	// 1000, so four are taken and six held.
	for i := 0; i < 4; i++ {
		expect(t, "WRITE", w.recv(), "OK")
	}
	st := waitStats(t, srv, func(s Stats) bool { return s.Stalled == 6 })
	if st.Chunks != 4 || st.QueuedBytes != 4*319 {
		t.Fatalf("stats %+v, want 4 chunks of cost 319", st)
	}
}

// A held WRITE whose connection CLOSEs the pipe and then dies leaves
// nothing behind: the pipe is released.
func TestHeldWriteClosedAndDroppedReleasesPipe(t *testing.T) {
	srv := startServer(t, Options{TotalLimit: 1000})
	a := dialPeer(t, srv)
	expect(t, "OPEN", a.do("OPEN", "a"), "OK")
	expect(t, "WRITE", a.do("WRITE", "a", strings.Repeat("x", 2000)), "OK")
	for i := 0; i < 5; i++ {
		b := dialPeer(t, srv)
		expect(t, "OPEN", b.do("OPEN", "b"), "OK")
		b.send("WRITE", "b", "held")
		b.send("CLOSE", "b")
		waitStats(t, srv, func(s Stats) bool { return s.Stalled == 1 })
		b.c.Close()
		waitStats(t, srv, func(s Stats) bool { return s.Clients == 1 })
	}
	if st := srv.Stats(); st.Pipes != 1 || st.Stalled != 0 {
		t.Fatalf("after held writers closed and died: %+v, want only pipe a", st)
	}
}

// One connection may write past the pipe limit and then read the same
// pipe: the broker reads on past the held WRITEs (up to its read-ahead)
// so the READs that drain the pipe arrive.
func TestSameConnectionWritesPastLimitThenReads(t *testing.T) {
	srv := startServer(t, Options{PipeLimit: 10 << 10})
	c := dialPeer(t, srv)
	chunk := strings.Repeat("c", 1024)
	c.send("OPEN", "p")
	for i := 0; i < 500; i++ {
		c.send("WRITE", "p", chunk)
	}
	for i := 0; i < 500; i++ {
		c.send("READ", "p")
	}
	expect(t, "OPEN", c.recv(), "OK")
	for i := 0; i < 500; i++ {
		expect(t, "WRITE", c.recv(), "OK")
	}
	for i := 0; i < 500; i++ {
		expect(t, "READ", c.recv(), chunk)
	}
}

package zpipes

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/owner"
)

// ackReader opens pipe p with ACK on a new connection.
func ackReader(t *testing.T, srv *Server) *peer {
	t.Helper()
	r := dialPeer(t, srv)
	expect(t, "OPEN ACK", r.do("OPEN", "p", "ACK"), "OK")
	t.Cleanup(func() { checkAccounting(t, srv) })
	return r
}

// writeAll writes chunks to p over a new connection.
func writeAll(t *testing.T, srv *Server, chunks ...string) *peer {
	t.Helper()
	w := dialPeer(t, srv)
	expect(t, "OPEN", w.do("OPEN", "p"), "OK")
	for _, c := range chunks {
		expect(t, "WRITE", w.do("WRITE", "p", c), "OK")
	}
	return w
}

// checkAccounting checks, on the owner goroutine, that the memory charge
// is the sum of what the pipes hold queued and unacknowledged, and that
// no pipe counts fewer chunks taken than its reader holds.
func checkAccounting(t *testing.T, srv *Server) {
	t.Helper()
	var problem string
	owner.Do(srv.calls, srv.stopped, func() {
		var sum int64
		for _, p := range srv.pipes {
			sum += p.bytes
			if p.ack != nil {
				sum += p.ack.cost
				if p.taken < p.ack.chunks.Len() || p.ack.unacked() < 0 {
					problem = fmt.Sprintf("pipe %q: %d taken, reader holds %d (%d early)", p.name, p.taken, p.ack.chunks.Len(), p.ack.early)
				}
			}
			if p.chunks < 0 || p.bytes < 0 || p.taken < 0 {
				problem = fmt.Sprintf("pipe %q: %d chunks, %d bytes, %d taken", p.name, p.chunks, p.bytes, p.taken)
			}
		}
		if sum != srv.total {
			problem = fmt.Sprintf("total charge %d, pipes hold %d", srv.total, sum)
		}
	})
	if problem != "" {
		t.Fatal(problem)
	}
}

func unacked(t *testing.T, srv *Server) (int, PipeInfo) {
	t.Helper()
	snap, err := srv.Snapshot(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range snap.Deepest {
		if p.Name == "p" {
			if p.Unacked != snap.Unacked {
				t.Fatalf("pipe p holds %d unacknowledged, the broker %d", p.Unacked, snap.Unacked)
			}
			return snap.Unacked, p
		}
	}
	return snap.Unacked, PipeInfo{}
}

// Unacknowledged chunks go back to the head of the pipe, in the order they
// were delivered, when the reader CLOSEs the pipe or its connection ends;
// acknowledged ones are gone.
func TestAckUnacknowledgedGoBack(t *testing.T) {
	for _, how := range []string{"CLOSE", "disconnect"} {
		t.Run(how, func(t *testing.T) {
			srv := startServer(t, Options{})
			writeAll(t, srv, "a", "b", "c", "d", "e")
			r := ackReader(t, srv)
			for _, want := range []string{"a", "b", "c"} {
				expect(t, "READ", r.do("READ", "p"), want)
			}
			expect(t, "ACK 1", r.do("ACK", "p", "1"), "OK")
			if n, pi := unacked(t, srv); n != 2 || pi.UnackedBytes != 2 || pi.Chunks != 2 {
				t.Fatalf("after reading 3 and acking 1: %d unacked, pipe %+v; want 2 unacked, 2 queued", n, pi)
			}
			if how == "CLOSE" {
				expect(t, "CLOSE", r.do("CLOSE", "p"), "OK")
			} else {
				r.c.Close()
			}
			waitStats(t, srv, func(s Stats) bool { return s.Chunks == 4 && s.Unacked == 0 })
			r2 := dialPeer(t, srv) // a plain reader gets them too
			expect(t, "OPEN", r2.do("OPEN", "p"), "OK")
			for _, want := range []string{"b", "c", "d", "e"} {
				expect(t, "READ", r2.do("READ", "p"), want)
			}
			if st := srv.Stats(); st.Chunks != 0 || st.QueuedBytes != 0 {
				t.Fatalf("after reading all: %+v", st)
			}
		})
	}
}

// Every wrong ACK gets ERROR and changes nothing: the chunks held stay
// held, and a right ACK afterwards still works.
func TestAckWrong(t *testing.T) {
	srv := startServer(t, Options{})
	writeAll(t, srv, "a", "b", "c")
	r := ackReader(t, srv)
	expect(t, "READ", r.do("READ", "p"), "a")
	expect(t, "READ", r.do("READ", "p"), "b")
	plain := dialPeer(t, srv)
	expect(t, "OPEN", plain.do("OPEN", "p"), "OK")
	other := ackReader(t, srv) // opened with ACK, but not the reader
	before := srv.Stats()
	cases := []struct {
		p      *peer
		cmd    []string
		reason string
	}{
		{r, []string{"ACK", "p", "3"}, "ACK of 3 chunks, but this connection holds only 2 unacknowledged"},
		{r, []string{"ACK", "p", "0"}, "ACK count must be"},
		{r, []string{"ACK", "p", "-1"}, "ACK count must be"},
		{r, []string{"ACK", "p", "+1"}, "ACK count must be"},
		{r, []string{"ACK", "p", " 1"}, "ACK count must be"},
		{r, []string{"ACK", "p", "1 "}, "ACK count must be"},
		{r, []string{"ACK", "p", "1x"}, "ACK count must be"},
		{r, []string{"ACK", "p", ""}, "ACK count must be"},
		{r, []string{"ACK", "p", "1000000000"}, "ACK count must be"},
		{r, []string{"ACK", "p", "99999999999999999999"}, "ACK count must be"},
		{r, []string{"ACK", "p"}, "ACK needs a count frame"},
		{r, []string{"ACK", "p", "1", "1"}, "ACK takes 3 frames, got 4"},
		{r, []string{"ACK", "", "1"}, "missing pipe name"},
		{r, []string{"ACK", "q", "1"}, "pipe not open on this connection"},
		{r, []string{"ack", "p", "1"}, "unknown command"},
		{r, []string{"OPEN", "p"}, "pipe already open on this connection with ACK"},
		{r, []string{"OPEN", "p", "ack"}, "OPEN's third frame must be ACK"},
		{plain, []string{"ACK", "p", "1"}, "pipe not opened with ACK on this connection"},
		{plain, []string{"OPEN", "p", "ACK"}, "pipe already open on this connection without ACK"},
		{other, []string{"ACK", "p", "1"}, "ACK of 1 chunks, but this connection holds none unacknowledged"},
	}
	for _, c := range cases {
		got := c.p.do(c.cmd...)
		if !strings.HasPrefix(got, "ERROR|"+c.reason) {
			t.Errorf("%q: got %q, want ERROR|%s...", c.cmd, got, c.reason)
		}
		if n, _ := unacked(t, srv); n != 2 {
			t.Fatalf("%q changed the unacknowledged chunks to %d", c.cmd, n)
		}
	}
	if st := srv.Stats(); st != before {
		t.Fatalf("wrong ACKs changed the broker: %+v, was %+v", st, before)
	}
	expect(t, "ACK 2", r.do("ACK", "p", "2"), "OK")
	expect(t, "READ", r.do("READ", "p"), "c")
	expect(t, "ACK 1", r.do("ACK", "p", "1"), "OK")
	expect(t, "ACK more", r.do("ACK", "p", "1"), "ERROR|ACK of 1 chunks, but this connection holds only 0 unacknowledged")
}

// A reader at its bound waits as on an empty pipe; acknowledging lets it
// go on. Its waiting READs do not let writes past the pipe limit, which
// counts the unacknowledged chunks too.
func TestAckBound(t *testing.T) {
	for _, bound := range []string{"chunks", "bytes"} {
		t.Run(bound, func(t *testing.T) {
			opts := Options{MaxUnacked: 3, PipeLimit: 1800}
			if bound == "bytes" {
				opts = Options{MaxUnackedBytes: 250, PipeLimit: 1800} // the third 100-byte chunk passes it
			}
			srv := startServer(t, opts)
			var chunks []string
			for i := range 6 {
				chunks = append(chunks, fmt.Sprintf("%03d%s", i, strings.Repeat(".", 97)))
			}
			w := writeAll(t, srv, chunks...)
			r := ackReader(t, srv)
			for range 5 {
				r.send("READ", "p")
			}
			for i := range 3 {
				expect(t, "READ", r.recv(), chunks[i])
			}
			held := func(queued int) {
				t.Helper()
				time.Sleep(100 * time.Millisecond) // time to take more if it would
				if n, pi := unacked(t, srv); n != 3 || pi.Chunks != queued {
					t.Fatalf("at the bound: %d unacked, %+v; want 3, %d queued", n, pi, queued)
				}
			}
			held(3)
			// 6 chunks of 100+65 bytes are charged 990: a 1 KiB chunk
			// gets in, the next is held though READs wait, and stays
			// held while 3 queued and 3 unacknowledged chunks and the
			// big one are charged 1914.
			big := strings.Repeat("x", 1024)
			w.send("WRITE", "p", big)
			w.send("WRITE", "p", "after")
			expect(t, "WRITE", w.recv(), "OK")
			waitStats(t, srv, func(s Stats) bool { return s.Stalled == 1 })
			r.send("ACK", "p", "1")
			expect(t, "READ", r.recv(), chunks[3])
			held(3)
			// The ACK's OK comes in command order, after the READ that
			// waits at the bound: a client must not wait for it before
			// it acknowledges more.
			r.send("ACK", "p", "3")
			expect(t, "READ", r.recv(), chunks[4])
			expect(t, "ACK", r.recv(), "OK")
			expect(t, "ACK", r.recv(), "OK")
			expect(t, "WRITE", w.recv(), "OK")
			expect(t, "READ", r.do("READ", "p"), chunks[5])
			if got := r.do("READ", "p"); got != big {
				t.Fatalf("READ: got %d bytes, want the 1 KiB chunk", len(got))
			}
			expect(t, "ACK", r.do("ACK", "p", "3"), "OK")
			expect(t, "READ", r.do("READ", "p"), "after")
		})
	}
}

// A reader's chunks are its own: re-opening the pipe with the other mode
// is refused, and CLOSE then OPEN without ACK makes a plain reader.
func TestAckModeSwitch(t *testing.T) {
	srv := startServer(t, Options{})
	w := writeAll(t, srv, "a", "b")
	expect(t, "CLOSE", w.do("CLOSE", "p"), "OK")
	r := ackReader(t, srv)
	expect(t, "OPEN ACK again", r.do("OPEN", "p", "ACK"), "OK")
	expect(t, "READ", r.do("READ", "p"), "a")
	expect(t, "CLOSE", r.do("CLOSE", "p"), "OK")
	expect(t, "OPEN", r.do("OPEN", "p"), "OK")
	expect(t, "READ", r.do("READ", "p"), "a")
	expect(t, "ACK", r.do("ACK", "p", "1"), "ERROR|pipe not opened with ACK on this connection")
	expect(t, "READ", r.do("READ", "p"), "b")
	expect(t, "CLOSE", r.do("CLOSE", "p"), "OK")
	waitStats(t, srv, func(s Stats) bool { return s.Pipes == 0 && s.QueuedBytes == 0 })
}

// Chunks the reader acknowledges before the broker knows them written (a
// peer that does not read its socket) are consumed once written, or when
// the connection ends; chunks not yet written when the reader CLOSEs go
// back as copies, byte for byte, while the originals still go out.
func TestAckBeforeWritten(t *testing.T) {
	big := func(c byte) string { return strings.Repeat(string(c), 16<<20) }
	srv := startServer(t, Options{})
	w := writeAll(t, srv, big('a'), big('b'), big('c'))
	expect(t, "CLOSE", w.do("CLOSE", "p"), "OK")
	r := dialRaw(t, srv)
	r.send("OPEN", "p", "ACK")
	r.send("READ", "p")
	r.send("READ", "p")
	r.send("READ", "p")
	waitStats(t, srv, func(s Stats) bool { return s.Unacked == 3 })
	r.send("ACK", "p", "1") // a: surely not all in the socket yet
	waitStats(t, srv, func(s Stats) bool { return s.Unacked == 2 })
	r.send("CLOSE", "p")
	waitStats(t, srv, func(s Stats) bool { return s.Unacked == 0 && s.Chunks == 2 })
	r2 := dialPeer(t, srv)
	expect(t, "OPEN", r2.do("OPEN", "p"), "OK")
	for _, c := range []byte{'b', 'c'} {
		if got := r2.do("READ", "p"); got != big(c) {
			t.Fatalf("given back: got %d bytes starting %q, want 16 MiB of %q", len(got), got[:min(len(got), 8)], c)
		}
	}
	expect(t, "CLOSE", r2.do("CLOSE", "p"), "OK")
	if st := srv.Stats(); st.Pipes != 1 {
		t.Fatalf("pipe released while a is still on its way: %+v", st)
	}
	r.nc.Close()
	waitStats(t, srv, func(s Stats) bool { return s.Clients == 2 && s.Pipes == 0 && s.QueuedBytes == 0 })
	checkAccounting(t, srv)
}

// Acknowledged chunks leave the memory charge; unacknowledged ones stay
// in it, and the total limit holds writers back for them.
func TestAckChargedAgainstLimits(t *testing.T) {
	srv := startServer(t, Options{TotalLimit: 1000})
	chunk := strings.Repeat("x", 400)
	w := writeAll(t, srv, chunk, chunk)
	r := ackReader(t, srv)
	expect(t, "READ", r.do("READ", "p"), chunk)
	expect(t, "READ", r.do("READ", "p"), chunk)
	st := srv.Stats()
	if st.Chunks != 0 || st.Unacked != 2 || st.QueuedBytes != 2*(400+65) {
		t.Fatalf("2 chunks held: %+v", st)
	}
	w.send("WRITE", "p", chunk)
	w.send("WRITE", "p", chunk)
	expect(t, "WRITE", w.recv(), "OK")
	waitStats(t, srv, func(s Stats) bool { return s.Stalled == 1 })
	expect(t, "ACK", r.do("ACK", "p", "2"), "OK")
	expect(t, "WRITE", w.recv(), "OK")
	if st := srv.Stats(); st.Unacked != 0 || st.Chunks != 2 || st.QueuedBytes != 2*(400+65) {
		t.Fatalf("after the ACK: %+v", st)
	}
}

// Random reader sessions, acknowledging or plain, pipelining READs and
// ACKs and ending with CLOSE or a dropped connection, against a model of
// the pipe: an acknowledging reader's unacknowledged chunks go back to
// the head in delivery order, everything else it read is gone, and the
// pipe ends up holding exactly what the model says, in that order.
func TestAckRandomSessions(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 15))
			srv := startServer(t, Options{MaxUnacked: 50})
			const n = 400
			var model []string // the pipe's chunks, head first
			var all []string
			for i := range n {
				all = append(all, fmt.Sprintf("c%03d", i))
			}
			w := writeAll(t, srv, all...)
			expect(t, "CLOSE", w.do("CLOSE", "p"), "OK")
			model = append(model, all...)
			clients := 1
			for session := 0; len(model) > 20; session++ {
				r := dialPeer(t, srv)
				clients++
				acking := rng.IntN(3) > 0
				if acking {
					expect(t, "OPEN ACK", r.do("OPEN", "p", "ACK"), "OK")
				} else {
					expect(t, "OPEN", r.do("OPEN", "p"), "OK")
				}
				var delivered []string // unacknowledged, in delivery order
				for range 1 + rng.IntN(6) {
					k := min(1+rng.IntN(20), len(model)-len(delivered)-1)
					if acking {
						k = min(k, 50-len(delivered))
					}
					for range k {
						r.send("READ", "p")
					}
					ack := 0
					if acking && len(delivered)+k > 0 {
						ack = rng.IntN(len(delivered) + k + 1)
						if ack > 0 {
							r.send("ACK", "p", fmt.Sprint(ack))
						}
					}
					for range k {
						got := r.recv()
						if got != model[0] {
							t.Fatalf("session %d: READ got %q, want %q", session, got, model[0])
						}
						model = model[1:]
						if acking {
							delivered = append(delivered, got)
						}
					}
					if ack > 0 {
						expect(t, "ACK", r.recv(), "OK")
						delivered = delivered[ack:]
					}
				}
				if st := srv.Stats(); st.Unacked != len(delivered) || st.Chunks != len(model) {
					t.Fatalf("session %d: %+v, want %d unacknowledged and %d queued", session, st, len(delivered), len(model))
				}
				checkAccounting(t, srv)
				if rng.IntN(2) == 0 {
					expect(t, "CLOSE", r.do("CLOSE", "p"), "OK")
				}
				r.c.Close()
				clients--
				model = append(delivered, model...)
				waitStats(t, srv, func(s Stats) bool { return s.Clients == clients && s.Unacked == 0 })
				checkAccounting(t, srv)
			}
			readInOrder(t, srv, "p", model)
			waitStats(t, srv, func(s Stats) bool { return s.Pipes == 0 && s.QueuedBytes == 0 && s.Chunks == 0 })
		})
	}
}

// readInOrder reads pipe to the end of want with a new plain reader,
// checking each chunk, and closes it.
func readInOrder(t *testing.T, srv *Server, pipe string, want []string) {
	t.Helper()
	r := dialPeer(t, srv)
	expect(t, "OPEN", r.do("OPEN", pipe), "OK")
	for _, w := range want {
		expect(t, "READ", r.do("READ", pipe), w)
	}
	expect(t, "CLOSE", r.do("CLOSE", pipe), "OK")
}

// A chunk acknowledged while its READ's reply still waits behind another
// READ's, by a reader that then CLOSEs the pipe and dies: it was
// acknowledged, so it is consumed, not given back, and the pipe is
// released.
func TestAckEarlyInHeldReplyThenDeath(t *testing.T) {
	srv := startServer(t, Options{})
	w := writeAll(t, srv, "a")
	expect(t, "CLOSE", w.do("CLOSE", "p"), "OK")
	r := dialRaw(t, srv)
	r.send("OPEN", "x")
	r.send("OPEN", "p", "ACK")
	r.send("READ", "x") // waits: x is empty
	r.send("READ", "p") // takes a; its reply waits behind READ x's
	r.send("ACK", "p", "1")
	r.send("CLOSE", "p")
	time.Sleep(100 * time.Millisecond) // the broker takes it all in
	if st := srv.Stats(); st.Pipes != 2 || st.Chunks != 0 || st.Unacked != 0 {
		t.Fatalf("%+v: p, empty and closed, must be kept while a is on its way", st)
	}
	r.nc.Close()
	waitStats(t, srv, func(s Stats) bool { return s.Clients == 1 && s.Pipes == 0 && s.QueuedBytes == 0 })
}

// A connection that read p as a plain reader, CLOSEd it with the reply
// still unsent, read it again with ACK and died: both chunks go back,
// the one taken first ahead.
func TestAckGiveBackAfterPlainSpellInOrder(t *testing.T) {
	srv := startServer(t, Options{})
	w := writeAll(t, srv, "a", "b", "c")
	expect(t, "CLOSE", w.do("CLOSE", "p"), "OK")
	r := dialRaw(t, srv)
	r.send("OPEN", "x")
	r.send("OPEN", "p")
	r.send("READ", "x") // waits: x is empty, and holds back the replies below
	r.send("READ", "p") // a, plain
	r.send("CLOSE", "p")
	r.send("OPEN", "p", "ACK")
	r.send("READ", "p") // b, unacknowledged
	waitStats(t, srv, func(s Stats) bool { return s.Unacked == 1 && s.Chunks == 1 })
	r.nc.Close()
	waitStats(t, srv, func(s Stats) bool { return s.Clients == 1 && s.Chunks == 3 })
	checkAccounting(t, srv)
	r2 := dialPeer(t, srv)
	expect(t, "OPEN", r2.do("OPEN", "p"), "OK")
	for _, want := range []string{"a", "b", "c"} {
		expect(t, "READ", r2.do("READ", "p"), want)
	}
}

// Random reader sessions like TestAckRandomSessions, but with replies
// held unsent (behind a READ waiting on an empty pipe), so chunks are
// acknowledged before they are written, a pipe is CLOSEd and opened
// again in either mode with its replies still unsent, and connections
// die holding them. The pipe must end up holding exactly what the model
// says: everything not acknowledged and not delivered, each chunk taken
// earlier ahead of one taken later.
func TestAckRandomHeldReplies(t *testing.T) {
	const bound = 8
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1515))
			srv := startServer(t, Options{MaxUnacked: bound})
			var model []string // the pipe's chunks, head first
			for i := range 600 {
				model = append(model, fmt.Sprintf("c%03d", i))
			}
			w := writeAll(t, srv, model...)
			expect(t, "CLOSE", w.do("CLOSE", "p"), "OK")
			unblocker := dialPeer(t, srv)
			expect(t, "OPEN", unblocker.do("OPEN", "x"), "OK")
			clients := 2
			for session := 0; len(model) > 60; session++ { // a session reads at most 48
				r := dialPeer(t, srv)
				clients++
				expect(t, "OPEN", r.do("OPEN", "x"), "OK")
				acking := rng.IntN(2) == 0
				if acking {
					expect(t, "OPEN ACK", r.do("OPEN", "p", "ACK"), "OK")
				} else {
					expect(t, "OPEN", r.do("OPEN", "p"), "OK")
				}
				var (
					pending []string // replies owed, in order
					held    []string // unacknowledged, in delivery order
					unsent  []string // plain chunks whose replies are held back
					waiting []int    // READs waiting at the bound: their places in pending
					trace   []string
					blocked bool
				)
				// take is a READ that takes the next chunk, its reply at
				// pending[at].
				take := func(at int) {
					pending[at] = model[0]
					if acking {
						held = append(held, model[0])
					} else if blocked {
						unsent = append(unsent, model[0])
					}
					model = model[1:]
				}
				// drain receives the replies owed up to the first READ
				// waiting at the bound.
				drain := func() {
					n := len(pending)
					if len(waiting) > 0 {
						n = waiting[0]
					}
					for _, want := range pending[:n] {
						expect(t, fmt.Sprintf("session %d reply", session), r.recv(), want)
					}
					pending = pending[n:]
					for i := range waiting {
						waiting[i] -= n
					}
				}
				for step := 0; step < 12; step++ {
					op := rng.IntN(6)
					trace = append(trace, fmt.Sprintf("op%d acking=%v blocked=%v held=%v waiting=%d unsent=%v", op, acking, blocked, held, len(waiting), unsent))
					switch {
					case op == 0 && !blocked && len(waiting) == 0: // else X could be held behind them
						drain() // all written before the block
						r.send("READ", "x")
						pending = append(pending, "X")
						blocked = true
					case op == 1 && blocked:
						expect(t, "WRITE x", unblocker.do("WRITE", "x", "X"), "OK")
						blocked = false
						unsent = nil
						drain()
					case op == 2 && acking && len(held) > 0:
						n := 1 + rng.IntN(len(held))
						r.send("ACK", "p", fmt.Sprint(n))
						pending = append(pending, "OK")
						held = held[n:]
						for len(waiting) > 0 && len(held) < bound {
							take(waiting[0])
							waiting = waiting[1:]
						}
					case op == 3:
						// CLOSE, then open again in either mode.
						r.send("CLOSE", "p")
						for _, at := range waiting {
							pending[at] = "ERROR|pipe closed while READ was waiting"
						}
						waiting = nil
						pending = append(pending, "OK")
						model = append(held, model...)
						held = nil
						acking = rng.IntN(2) == 0
						if acking {
							r.send("OPEN", "p", "ACK")
						} else {
							r.send("OPEN", "p")
						}
						pending = append(pending, "OK")
					default:
						// An acknowledging reader's READs past the bound
						// wait, in order, until an ACK or CLOSE.
						for range 1 + rng.IntN(4) {
							r.send("READ", "p")
							pending = append(pending, "")
							if acking && (len(waiting) > 0 || len(held) >= bound) {
								waiting = append(waiting, len(pending)-1)
							} else {
								take(len(pending) - 1)
							}
						}
					}
				}
				if !blocked {
					drain()
				}
				r.c.Close()
				clients--
				model = append(append(unsent, held...), model...)
				waitStats(t, srv, func(s Stats) bool { return s.Clients == clients && s.Unacked == 0 })
				if st := srv.Stats(); st.Chunks != len(model) {
					t.Log(strings.Join(trace, "\n"))
					t.Fatalf("session %d: %+v, want %d queued", session, st, len(model))
				}
				checkAccounting(t, srv)
			}
			readInOrder(t, srv, "p", model)
			expect(t, "CLOSE", unblocker.do("CLOSE", "x"), "OK")
			waitStats(t, srv, func(s Stats) bool { return s.Pipes == 0 && s.QueuedBytes == 0 && s.Chunks == 0 })
		})
	}
}

// Commands of a connection whose socket is already gone (read before it
// went, handled after): a chunk taken for its READ is never sent, and if
// the connection acknowledges it and CLOSEs the pipe, it must still be
// settled: consumed, and the pipe released, not kept forever.
func TestAckEarlyUnsentThenCloseOnLostConnection(t *testing.T) {
	srv := startServer(t, Options{})
	w := writeAll(t, srv, "a", "b")
	expect(t, "CLOSE", w.do("CLOSE", "p"), "OK")
	r := dialPeer(t, srv)
	expect(t, "OPEN ACK", r.do("OPEN", "p", "ACK"), "OK")
	owner.Do(srv.calls, srv.stopped, func() {
		c := loseConnection(srv, "p")
		for _, cmd := range [][]string{{"READ", "p"}, {"ACK", "p", "1"}, {"CLOSE", "p"}} {
			srv.handle(c, frames(cmd...))
			srv.afterEvent()
		}
	})
	waitStats(t, srv, func(s Stats) bool { return s.Clients == 1 && s.Chunks == 1 })
	checkAccounting(t, srv)
	r2 := dialPeer(t, srv)
	expect(t, "OPEN", r2.do("OPEN", "p"), "OK")
	expect(t, "READ", r2.do("READ", "p"), "b")
	expect(t, "CLOSE", r2.do("CLOSE", "p"), "OK")
	waitStats(t, srv, func(s Stats) bool { return s.Pipes == 0 && s.QueuedBytes == 0 })
}

// loseConnection ends the socket of the one connection that has pipe
// open, as a peer's death does, and waits until Send fails on it: the
// owner (the caller) has yet to handle the commands read before.
func loseConnection(srv *Server, pipe string) *client {
	var c *client
	for _, cl := range srv.clients {
		if cl.open[pipe] != nil {
			c = cl
		}
	}
	c.conn.Close()
	for c.conn.Send(okReply) == nil {
		c.sent++
		time.Sleep(time.Millisecond)
	}
	return c
}

// Replies a reader's socket can no longer take (it is gone, its
// Disconnected event on its way) give their chunks back in the order
// they were taken.
func TestUnsendableRepliesGoBackInOrder(t *testing.T) {
	for _, mode := range []string{"plain", "ACK"} {
		t.Run(mode, func(t *testing.T) {
			srv := startServer(t, Options{})
			w := writeAll(t, srv, "a", "b", "c", "d")
			expect(t, "CLOSE", w.do("CLOSE", "p"), "OK")
			expect(t, "OPEN x", w.do("OPEN", "x"), "OK")
			r := dialRaw(t, srv)
			r.send("OPEN", "x")
			if mode == "ACK" {
				r.send("OPEN", "p", "ACK")
			} else {
				r.send("OPEN", "p")
			}
			r.send("READ", "x") // waits: x is empty, and holds back the replies below
			r.send("READ", "p") // a
			r.send("READ", "p") // b
			r.send("READ", "p") // c
			waitStats(t, srv, func(s Stats) bool { return s.Chunks == 1 })
			owner.Do(srv.calls, srv.stopped, func() {
				loseConnection(srv, "p")
				var wc *client
				for _, cl := range srv.clients {
					if cl.open["p"] == nil {
						wc = cl
					}
				}
				srv.handle(wc, frames("WRITE", "x", "X")) // the held replies are sent now, and fail
				srv.afterEvent()
			})
			waitStats(t, srv, func(s Stats) bool { return s.Clients == 1 && s.Chunks == 5 })
			checkAccounting(t, srv)
			r2 := dialPeer(t, srv)
			expect(t, "OPEN", r2.do("OPEN", "p"), "OK")
			for _, want := range []string{"a", "b", "c", "d"} {
				expect(t, "READ", r2.do("READ", "p"), want)
			}
		})
	}
}

// A connection that reads a pipe with ACK and writes to it too (a job
// put back for later): its WRITEs are not held back for room its own
// unacknowledged chunks take, or once they hold enough back the broker
// stops reading its commands, the ACK that would make room among them.
func TestAckReaderWritesSamePipe(t *testing.T) {
	const mib = 1 << 20
	srv := startServer(t, Options{PipeLimit: 2 * mib})
	big := func(c byte) string { return strings.Repeat(string(c), mib) }
	r := ackReader(t, srv)
	expect(t, "WRITE a", r.do("WRITE", "p", big('a')), "OK")
	expect(t, "WRITE b", r.do("WRITE", "p", big('b')), "OK")
	if r.do("READ", "p") != big('a') || r.do("READ", "p") != big('b') {
		t.Fatal("READs did not get a and b")
	}
	r.send("WRITE", "p", big('c')) // put back
	r.send("WRITE", "p", big('d'))
	// Both queued, or d held back and the connection's commands no
	// longer read (but what its reader had in hand: the next command).
	waitStats(t, srv, func(s Stats) bool { return s.Chunks == 2 || s.Stalled == 1 })
	r.send("OPEN", "p", "ACK")
	time.Sleep(100 * time.Millisecond)
	r.send("ACK", "p", "2")
	expect(t, "WRITE c", r.recv(), "OK")
	expect(t, "WRITE d", r.recv(), "OK")
	expect(t, "OPEN", r.recv(), "OK")
	expect(t, "ACK", r.recv(), "OK")
	if r.do("READ", "p") != big('c') {
		t.Fatal("READ did not get c")
	}
}

package zpipes_test

// The acknowledgement extension (OPEN / pipe / ACK, ACK / pipe / count)
// against real libzmq peers: pyzmq processes driven by peer.py, killed
// and stopped like crashing applications.

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/testsupport"
	"github.com/zbroker/zbroker/zpipes"
)

// ackedFirst starts an acknowledging reader of pipe k that reads 20
// chunks, acknowledges 10 and then has 20 more READs in flight; it
// returns the reader and what it received.
func ackedFirst(t *testing.T, ep string) (*ixPeer, []string) {
	t.Helper()
	r1 := ixStartPeer(t, ep, "DEALER", "ack-reader-1")
	r1.expect(ok, "OPEN", "k", "ACK")
	r1.reads("k", 20, 20)
	got := r1.collect(20)
	r1.send("ACK", "k", "10")
	r1.reads("k", 20, 20)
	if reply := r1.recv(); !slices.Equal(reply, ok) {
		t.Fatalf("ACK 10 after 20 chunks: %s, want OK", describe(reply))
	}
	ixWait(t, 5*time.Second, "reader 1 to send its 20 more READs", func() bool {
		sent, _, _ := r1.status()
		return sent == 1+20+1+20
	})
	return r1, got
}

// checkAfterDeath reads the rest of pipe k (chunks prefix 10..total-1)
// with a new reader, plain or acknowledging, and checks that it gets the
// dead reader's unacknowledged chunks first, in order, then the rest:
// every chunk is read, the only duplicates are chunks never acknowledged.
func checkAfterDeath(t *testing.T, srv *zpipes.Server, ep string, first []string, more [][]string, prefix string, total int, acking bool) {
	t.Helper()
	checkSeq(t, "reader 1", first, prefix, 0)
	var printed []string // what it printed of the READs in flight
	for _, m := range more {
		if len(m) != 1 {
			t.Fatalf("reader 1 got %s", describe(m))
		}
		printed = append(printed, m[0])
	}
	checkSeq(t, "reader 1's READs in flight", printed, prefix, 20)
	ixWaitStats(t, srv, "the dead reader's chunks back in the pipe", func(st zpipes.Stats) bool {
		return st.Clients == 1 && st.Unacked == 0 && st.Chunks == total-10
	})
	r2 := ixStartPeer(t, ep, "DEALER", "reader-2")
	if acking {
		r2.expect(ok, "OPEN", "k", "ACK")
	} else {
		r2.expect(ok, "OPEN", "k")
	}
	// In batches the acknowledging reader acknowledges: its bound is
	// 10000.
	for from := 10; from < total; from += 1000 {
		n := min(1000, total-from)
		r2.reads("k", n, 50)
		checkSeq(t, "reader 2", r2.collect(n), prefix, from)
		if acking {
			if st := srv.Stats(); st.Unacked != n {
				t.Fatalf("acknowledging reader 2 holds %d unacknowledged, want %d", st.Unacked, n)
			}
			r2.expect(ok, "ACK", "k", strconv.Itoa(n))
		}
	}
	r2.expect(ok, "CLOSE", "k")
	if st := srv.Stats(); st.Chunks != 0 || st.Unacked != 0 || st.QueuedBytes != 0 {
		t.Fatalf("after reading everything: %+v", st)
	}
	t.Logf("reader 1 printed %d chunks and acknowledged 10; reader 2 read chunks 10..%d (%d duplicates, all unacknowledged)", 20+len(more), total-1, 10+len(more))
}

// An acknowledging reader SIGKILLed with 20 READs in flight, having
// acknowledged half of what it got: the next reader gets the rest.
func TestInteropAckReaderKilled(t *testing.T) {
	for _, next := range []string{"acknowledging", "plain"} {
		t.Run("next reader "+next, func(t *testing.T) {
			srv := ixStartBroker(t, "ackkill", zpipes.Options{})
			ep := srv.Endpoint()
			const total = 100
			w := ixStartPeer(t, ep, "DEALER", "writer")
			w.expect(ok, "OPEN", "k")
			w.writes("k", total, "A", 0, 16)
			w.expectOKs(total)
			w.expect(ok, "CLOSE", "k")

			r1, first := ackedFirst(t, ep)
			more := r1.kill()
			checkAfterDeath(t, srv, ep, first, more, "A", total, next == "acknowledging")
		})
	}
}

// The same with the reader SIGSTOPped while the writer keeps writing: its
// 20 waiting READs are answered into the socket of a process that does
// not run, then it is SIGKILLed.
func TestInteropAckReaderStoppedThenKilled(t *testing.T) {
	srv := ixStartBroker(t, "ackstop", zpipes.Options{})
	ep := srv.Endpoint()
	const total = 20000
	w := ixStartPeer(t, ep, "DEALER", "writer")
	w.expect(ok, "OPEN", "k")
	w.writes("k", 20, "S", 64, 8)
	w.expectOKs(20)

	r1 := ixStartPeer(t, ep, "DEALER", "ack-reader-1")
	r1.expect(ok, "OPEN", "k", "ACK")
	r1.reads("k", 20, 20)
	first := r1.collect(20)
	r1.expect(ok, "ACK", "k", "10")
	r1.reads("k", 20, 20) // the pipe is empty: they wait
	ixWait(t, 5*time.Second, "reader 1 to send its 20 more READs", func() bool {
		sent, _, _ := r1.status()
		return sent == 1+20+1+20
	})
	ixWait(t, 5*time.Second, "the broker to take in the READs", func() bool {
		snap, err := srv.Snapshot(context.Background(), 10)
		return err == nil && len(snap.Conns) == 2 && snap.Conns[1].Owed == 20
	})
	if err := r1.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	w.command("writes", ixEncode("k"), strconv.Itoa(total-20), ixEncode("S"), "64", "8", "20") // chunks 20..
	w.expectOKs(total - 20)
	if st := srv.Stats(); st.Unacked != 30 {
		t.Fatalf("stopped reader holds %d unacknowledged, want 10 plus the 20 its READs took", st.Unacked)
	}
	more := r1.kill()
	if len(more) != 0 {
		t.Fatalf("a stopped reader printed %d chunks", len(more))
	}
	w.expect(ok, "CLOSE", "k")
	checkAfterDeath(t, srv, ep, first, nil, "S", total, true)
}

// Every wrong ACK gets exactly [ERROR, reason] and changes nothing.
func TestInteropAckWrong(t *testing.T) {
	srv := ixStartBroker(t, "ackwrong", zpipes.Options{})
	ep := srv.Endpoint()
	w := ixStartPeer(t, ep, "DEALER", "writer")
	w.expect(ok, "OPEN", "k")
	w.writes("k", 5, "W", 0, 5)
	w.expectOKs(5)
	r := ixStartPeer(t, ep, "DEALER", "ack-reader")
	r.expect(ok, "OPEN", "k", "ACK")
	r.expect([]string{seq("W", 0)}, "READ", "k")
	r.expect([]string{seq("W", 1)}, "READ", "k")
	before := srv.Stats()
	for _, cmd := range [][]string{
		{"ACK", "k", "3"},          // more than it holds
		{"ACK", "k", "0"},          // not positive
		{"ACK", "k", "-1"},         // not a decimal
		{"ACK", "k", "two"},        // not a decimal
		{"ACK", "k", "1.0"},        // not a decimal
		{"ACK", "k", ""},           // empty count
		{"ACK", "k"},               // no count
		{"ACK", "k", "1", "x"},     // extra frame
		{"ACK", "nowhere", "1"},    // pipe not open
		{"OPEN", "k"},              // mode switch without CLOSE
		{"OPEN", "k2", "ack"},      // the flag is upper case
		{"OPEN", "k2", "ACK", "x"}, // extra frame
	} {
		reason := r.expectError(cmd...)
		t.Logf("%-28s -> ERROR %q", describe(cmd), reason)
	}
	w.expectError("ACK", "k", "1") // w opened k without ACK
	if st := srv.Stats(); st != before {
		t.Fatalf("wrong ACKs changed the broker: %+v, was %+v", st, before)
	}
	r.expect(ok, "ACK", "k", "2")
	r.expect([]string{seq("W", 2)}, "READ", "k")
	r.expect(ok, "ACK", "k", "1")
	if st := srv.Stats(); st.Unacked != 0 || st.Chunks != 2 {
		t.Fatalf("after the right ACKs: %+v", st)
	}
}

// A reader of the original protocol next to an acknowledging one gets the
// same byte-exact replies as always.
func TestInteropAckPlainReaderUnaffected(t *testing.T) {
	srv := ixStartBroker(t, "ackplain", zpipes.Options{})
	ep := srv.Endpoint()
	a := ixStartPeer(t, ep, "DEALER", "ack-reader")
	p := ixStartPeer(t, ep, "DEALER", "plain")
	a.expect(ok, "OPEN", "acked", "ACK")
	a.expect(ok, "WRITE", "acked", "mine")
	a.expect([]string{"mine"}, "READ", "acked") // held unacknowledged
	for _, step := range []struct {
		cmd   []string
		reply []string
	}{
		{[]string{"OPEN", "p"}, ok},
		{[]string{"WRITE", "p", "hello"}, ok},
		{[]string{"WRITE", "p", ""}, ok},
		{[]string{"WRITE", "p", "ERROR"}, ok},
		{[]string{"READ", "p"}, []string{"hello"}},
		{[]string{"READ", "p"}, []string{""}},
		{[]string{"READ", "p"}, []string{"ERROR"}},
		{[]string{"OPEN", "acked"}, ok},
		{[]string{"READ", "acked"}, []string{"ERROR", "pipe already has a reader"}},
		{[]string{"OPEN", "p", "x"}, []string{"ERROR", `OPEN's third frame must be ACK, got "x"`}},
		{[]string{"CLOSE", "p"}, ok},
		{[]string{"CLOSE", "acked"}, ok},
	} {
		p.expect(step.reply, step.cmd...)
	}
	// The plain reader takes the acknowledging reader's chunk once it
	// leaves, and may not ACK.
	a.expect(ok, "CLOSE", "acked")
	p.expect(ok, "OPEN", "acked")
	p.expect([]string{"mine"}, "READ", "acked")
	p.expect([]string{"ERROR", "pipe not opened with ACK on this connection"}, "ACK", "acked", "1")
}

// A reader that never acknowledges stops receiving at the bound;
// acknowledging lets it go on.
func TestInteropAckBound(t *testing.T) {
	srv := ixStartBroker(t, "ackbound", zpipes.Options{MaxUnacked: 5})
	ep := srv.Endpoint()
	w := ixStartPeer(t, ep, "DEALER", "writer")
	w.expect(ok, "OPEN", "k")
	w.writes("k", 20, "B", 0, 20)
	w.expectOKs(20)
	r := ixStartPeer(t, ep, "DEALER", "ack-reader")
	r.expect(ok, "OPEN", "k", "ACK")
	r.reads("k", 8, 8)
	checkSeq(t, "up to the bound", r.collect(5), "B", 0)
	if got := r.recvWithin(300 * time.Millisecond); got != nil {
		t.Fatalf("a reader at its bound of 5 got %s", describe(got))
	}
	if st := srv.Stats(); st.Unacked != 5 || st.Chunks != 15 {
		t.Fatalf("at the bound: %+v", st)
	}
	r.send("ACK", "k", "3")
	checkSeq(t, "after ACK 3", r.collect(3), "B", 5)
	if reply := r.recv(); !slices.Equal(reply, ok) {
		t.Fatalf("ACK: %s", describe(reply))
	}
	r.send("READ", "k")
	if got := r.recvWithin(300 * time.Millisecond); got != nil {
		t.Fatalf("a reader at its bound again got %s", describe(got))
	}
	r.send("ACK", "k", "5")
	if got := r.collect(1); got[0] != seq("B", 8) {
		t.Fatalf("after ACK 5: %s", describe(got))
	}
	// ACK 5's OK comes after the READ sent before it.
	if reply := r.recv(); !slices.Equal(reply, ok) {
		t.Fatalf("ACK: %s", describe(reply))
	}
	r.expect(ok, "ACK", "k", "1")
	if st := srv.Stats(); st.Unacked != 0 || st.Chunks != 11 {
		t.Fatalf("after acknowledging all: %+v", st)
	}
}

// Durable mode: an acknowledging reader's unacknowledged chunks survive a
// SIGKILL of the broker, as they are consumed in the log only when
// acknowledged.
func TestInteropAckDurableCrash(t *testing.T) {
	bin := testsupport.BuildBroker(t)
	dir, name := t.TempDir(), ixName("ackdurable")
	ep := zpipes.Endpoint(name)
	b := startDurable(t, bin, dir, name)
	const total = 300
	w := ixStartPeer(t, ep, "DEALER", "writer")
	w.expect(ok, "OPEN", "k")
	w.writes("k", total, "D", 0, 50)
	w.expectOKs(total)
	r := ixStartPeer(t, ep, "DEALER", "ack-reader")
	r.expect(ok, "OPEN", "k", "ACK")
	r.reads("k", 200, 200) // more than the log store's 128 out at a time
	checkSeq(t, "before the crash", r.collect(200), "D", 0)
	r.expect(ok, "ACK", "k", "20")
	b.sigkill()
	r.kill()
	w.kill()

	b2 := startDurable(t, bin, dir, name)
	r2 := ixStartPeer(t, ep, "DEALER", "reader-2")
	r2.expect(ok, "OPEN", "k")
	r2.reads("k", total, total)
	var after []string
	for m := r2.recvWithin(2 * time.Second); m != nil; m = r2.recvWithin(2 * time.Second) {
		after = append(after, m[0])
	}
	if len(after) == 0 {
		t.Fatal("nothing recovered")
	}
	first, err := strconv.Atoi(strings.TrimPrefix(after[0], "D"))
	if err != nil || first > 20 {
		t.Fatalf("after the crash the pipe starts at %q: unacknowledged chunks lost (20 were acknowledged)", after[0])
	}
	checkSeq(t, "after the crash", after, "D", first)
	if first+len(after) != total {
		t.Fatalf("after the crash: chunks %d..%d, want up to %d", first, first+len(after)-1, total-1)
	}
	if !strings.Contains(b2.stderr.String(), "delivered again") {
		t.Errorf("%d chunks delivered again, and the log does not say so", total-first)
	}
	t.Logf("20 acknowledged, 180 held unacknowledged at the crash; recovered from chunk %d", first)
}

// A REQ socket can be an acknowledging reader too, one command at a time.
func TestInteropAckREQ(t *testing.T) {
	srv := ixStartBroker(t, "ackreq", zpipes.Options{})
	ep := srv.Endpoint()
	r := ixStartPeer(t, ep, "REQ", "req-reader")
	r.expect(ok, "OPEN", "k", "ACK")
	r.expect(ok, "WRITE", "k", "one")
	r.expect(ok, "WRITE", "k", "two")
	r.expect([]string{"one"}, "READ", "k")
	r.expect([]string{"two"}, "READ", "k")
	r.expect(ok, "ACK", "k", "1")
	r.expect([]string{"ERROR", "ACK of 2 chunks, but this connection holds only 1 unacknowledged"}, "ACK", "k", "2")
	r.expect(ok, "CLOSE", "k")
	r.expect(ok, "OPEN", "k")
	r.expect([]string{"two"}, "READ", "k")
}

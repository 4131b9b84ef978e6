package majordomo

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/owner"
)

// gatherRig: a broker whose held replies wait as long as wait (and the
// backstop), and which takes every client's replies for fast ones, one raw
// worker of service "s", and a raw client with n requests (bodies 0..n-1)
// sent.
func gatherRig(t *testing.T, wait time.Duration, n int) (srv *Server, w, c *rawPeer) {
	srv = startBroker(t, Options{})
	owner.Do(srv.calls, srv.stopped, func() { srv.gatherWait, srv.gatherBackstop, srv.gatherGap = wait, wait, math.MaxInt64 })
	w = dialRaw(t, srv.Endpoint())
	w.send("MDPW02", "\x01", "s")
	waitWorkers(t, srv, 1)
	c = dialRaw(t, srv.Endpoint())
	for i := range n {
		c.send("MDPC02", "\x01", "s", fmt.Sprint(i))
	}
	waitStats(t, srv, "requests in", func(st Stats) bool { return st.Queued+st.InFlight == n })
	return srv, w, c
}

// answer has the raw worker take its next request and reply to it, and
// returns the request's body.
func answer(t *testing.T, w *rawPeer) string {
	t.Helper()
	req := w.recvFrames()
	w.c.Send([][]byte{[]byte("MDPW02"), {4}, req[2], {}, req[4]})
	return string(req[4])
}

// TestRepliesGathered: a client with many requests outstanding gets its
// replies in groups of gatherMax, in order, and a message of another kind
// sent to it meanwhile comes after the replies held before it.
func TestRepliesGathered(t *testing.T) {
	_, w, c := gatherRig(t, time.Hour, gatherMin+2*gatherMax)
	for range gatherMax - 1 {
		answer(t, w)
	}
	c.silent(50 * time.Millisecond)
	answer(t, w)
	for i := range gatherMax {
		expect(t, "gathered reply", c.recv(), fmt.Sprintf("MDPC02|\x03|s|%d", i))
	}
	for range 3 {
		answer(t, w)
	}
	c.silent(50 * time.Millisecond)
	c.send("MDPC02", "\x01", MMIService, "s")
	for i := range 3 {
		expect(t, "held reply", c.recv(), fmt.Sprintf("MDPC02|\x03|s|%d", gatherMax+i))
	}
	expect(t, "MMI answer after the held replies", c.recv(), "MDPC02|\x03|"+MMIService+"|200")
	// Replies from gatherMax+3 on are held; with the one that leaves
	// the client fewer than gatherMin outstanding they all leave, then
	// each at once.
	n := gatherMin + 2*gatherMax
	for range n - gatherMin - gatherMax - 3 {
		answer(t, w)
	}
	c.silent(50 * time.Millisecond)
	answer(t, w)
	for i := gatherMax + 3; i <= n-gatherMin; i++ {
		expect(t, "reply", c.recv(), fmt.Sprintf("MDPC02|\x03|s|%d", i))
	}
	answer(t, w)
	expect(t, "reply near the end", c.recv(), fmt.Sprintf("MDPC02|\x03|s|%d", n-gatherMin+1))
}

// TestGatherSlowReplies: replies that come more than gatherGap apart
// leave at once, even to a client with many requests outstanding.
func TestGatherSlowReplies(t *testing.T) {
	srv, w, c := gatherRig(t, time.Hour, gatherMin+4)
	owner.Do(srv.calls, srv.stopped, func() { srv.gatherGap = 5 * time.Millisecond })
	for i := range 3 {
		time.Sleep(20 * time.Millisecond)
		answer(t, w)
		expect(t, "slow reply, at once", c.recv(), fmt.Sprintf("MDPC02|\x03|s|%d", i))
	}
}

// TestGatherLargeReply: a reply of gatherBytes or more is not held, and
// one that takes the held bytes past it leaves with those held before it.
func TestGatherLargeReply(t *testing.T) {
	_, w, c := gatherRig(t, time.Hour, gatherMin+3)
	big := strings.Repeat("x", gatherBytes)
	reply := func(body string) {
		req := w.recvFrames()
		w.c.Send([][]byte{[]byte("MDPW02"), {4}, req[2], {}, []byte(body)})
	}
	reply(big)
	expect(t, "large reply, at once", c.recv(), "MDPC02|\x03|s|"+big)
	reply("small")
	c.silent(20 * time.Millisecond)
	reply(big[1:])
	expect(t, "held reply", c.recv(), "MDPC02|\x03|s|small")
	expect(t, "reply past the held bytes", c.recv(), "MDPC02|\x03|s|"+big[1:])
}

// TestGatherWaitBounded: a held reply leaves within gatherWait even when
// nothing else happens (the next request never gets an answer).
func TestGatherWaitBounded(t *testing.T) {
	_, w, c := gatherRig(t, gatherWait, gatherMin+2)
	answer(t, w)
	expect(t, "reply held with no other event", c.recv(), "MDPC02|\x03|s|0")
	answer(t, w)
	expect(t, "next reply", c.recv(), "MDPC02|\x03|s|1")
}

// TestGatherWaitOnEvents: with the backstop timer far off, a reply held
// for gatherWait leaves with the broker's next event.
func TestGatherWaitOnEvents(t *testing.T) {
	srv, w, c := gatherRig(t, time.Hour, gatherMin+2)
	owner.Do(srv.calls, srv.stopped, func() { srv.gatherWait = time.Millisecond })
	answer(t, w)
	w.recvFrames() // the next request: the broker has taken the reply
	c.silent(20 * time.Millisecond)
	other := dialRaw(t, srv.Endpoint())
	other.send("MDPC02", "\x01", MMIService, "s")
	expect(t, "MMI answer", other.recv(), "MDPC02|\x03|"+MMIService+"|200")
	expect(t, "reply released by an event", c.recv(), "MDPC02|\x03|s|0")
}

// TestGatheringClientGone: a client that leaves while replies are held
// for it does not disturb another client's held replies.
func TestGatheringClientGone(t *testing.T) {
	const n = gatherMin + 8
	srv, w, c1 := gatherRig(t, time.Hour, n)
	c2 := dialRaw(t, srv.Endpoint())
	for i := range n {
		c2.send("MDPC02", "\x01", "s", fmt.Sprint(100+i))
	}
	waitStats(t, srv, "both clients' requests queued", func(st Stats) bool { return st.Queued+st.InFlight == 2*n })
	// Answer until both have replies held; the one held first is first
	// in srv.gathering, and leaves.
	held := map[*rawPeer][]string{}
	var first *rawPeer
	for len(held) < 2 {
		body := answer(t, w)
		p := c1
		if len(body) == 3 { // 100 and up
			p = c2
		}
		held[p] = append(held[p], body)
		if first == nil {
			first = p
		}
	}
	stay := c1
	if first == c1 {
		stay = c2
	}
	first.c.Close()
	waitStats(t, srv, "a client gone", func(st Stats) bool { return st.Peers == 2 })
	for {
		if body := answer(t, w); (len(body) == 3) == (stay == c2) {
			held[stay] = append(held[stay], body)
			break
		}
	}
	w.recvFrames() // the next request: the broker has taken that reply
	stay.send("MDPC02", "\x01", MMIService, "s")
	for _, body := range held[stay] {
		expect(t, "held reply", stay.recv(), "MDPC02|\x03|s|"+body)
	}
	expect(t, "MMI answer", stay.recv(), "MDPC02|\x03|"+MMIService+"|200")
	owner.Do(srv.calls, srv.stopped, func() {
		if len(srv.gathering) != 0 {
			t.Errorf("%d clients still listed as holding replies", len(srv.gathering))
		}
	})
}

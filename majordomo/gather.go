package majordomo

import (
	"time"

	"github.com/zbroker/zbroker/internal/owner"
)

// Gathering replies. A client that keeps many requests in flight gets
// their replies one at a time, as its workers finish, about every 10–30
// µs under load. Sent as they come, they leave in groups of about three
// per write (the client's writer takes what queued while it was writing
// the last group), and each loopback TCP write costs the broker 5–7 µs
// with the receiver's processing and wake-up, and wakes the client to
// read and answer a few at a time. Such a client loses nothing by getting
// its replies in larger groups: it has many more requests outstanding,
// which keep the workers busy meanwhile. So the final replies of a client
// with at least gatherMin further requests outstanding, coming at most
// gatherGap apart, are held, and sent
// together once gatherMax of them or gatherBytes wait, once it has fewer
// than gatherMin outstanding, or before anything else is sent to it. A
// client with few requests in flight gets every reply at once, and so does
// one whose replies come slowly (a slow service): grouping them would save
// nothing and add up to gatherBackstop to each.
//
// Why groups of 64: with 16 workers the replies of a client with 256
// requests in flight come about every 11 µs, and groups of 64 rather
// than 16 took its in-process throughput from about 92% to 97% of the
// one-at-a-time relay's (BENCHMARKS.md), while its other 192 requests
// keep the workers busy. How long a reply may wait is unchanged.
//
// How long a reply waits is bounded twice. The owner releases replies
// held for gatherWait or longer when it takes its next batch of events:
// under load that is within microseconds, and costs nothing. When nothing
// happens, a timer releases them after gatherBackstop: it is armed when a
// reply is held while it is not armed, and never stopped, because arming
// a timer wakes a thread waiting in the runtime's netpoller (an eventfd
// write and read, and a context switch): armed and stopped for every
// group, or firing every millisecond, it cost more than the writes saved.
const (
	gatherMin      = 32
	gatherMax      = 64
	gatherBytes    = 64 << 10
	gatherGap      = 200 * time.Microsecond // Server.gatherGap
	gatherWait     = time.Millisecond       // Server.gatherWait, for tests
	gatherBackstop = 10 * time.Millisecond  // Server.gatherBackstop
)

// gatherState is a client's held replies.
type gatherState struct {
	held  []*request // their replies in request.reply
	bytes int
	since time.Time // when the first was held
	last  time.Time // when the client's last final reply was made
	at    int       // index in Server.gathering, while held is not empty
}

// startGathering makes the backstop timer.
func (s *Server) startGathering() {
	s.gatherWait, s.gatherBackstop, s.gatherGap = gatherWait, gatherBackstop, gatherGap
	s.gatherTimer = time.AfterFunc(time.Hour, func() {
		owner.Do(s.calls, s.stopped, s.gatherTimeout)
	})
	s.gatherTimer.Stop()
}

func (s *Server) gatherTimeout() {
	s.gatherArmed = false
	s.releaseHeld()
}

// releaseOld sends the replies held for gatherWait or longer; the owner
// calls it after each batch of events.
func (s *Server) releaseOld() {
	// From the end: release moves the last client into the freed slot.
	for i := len(s.gathering) - 1; i >= 0; i-- {
		if p := s.gathering[i]; s.now.Sub(p.gather.since) >= s.gatherWait {
			s.release(p)
		}
	}
}

// replyTo sends p r's final reply (r.reply), or holds it (see above).
func (s *Server) replyTo(p *peer, r *request) {
	g := &p.gather
	size := framesLen(r.reply)
	fast := s.now.Sub(g.last) <= s.gatherGap
	g.last = s.now
	if len(g.held) == 0 && (!fast || p.pending < gatherMin || size >= gatherBytes) {
		s.sendReply(p, r)
		return
	}
	g.held = append(g.held, r)
	g.bytes += size
	if len(g.held) == 1 { // listed before any release, which unlists it
		g.at, g.since = len(s.gathering), s.now
		s.gathering = append(s.gathering, p)
		if !s.gatherArmed {
			s.gatherArmed = true
			s.gatherTimer.Reset(s.gatherBackstop)
		}
	}
	if p.pending < gatherMin || len(g.held) >= gatherMax || g.bytes >= gatherBytes {
		s.release(p)
	}
}

// toClient sends p a message other than a final reply, after its held
// replies: p sees replies in the order the broker made them.
func (s *Server) toClient(p *peer, frames [][]byte) {
	if len(p.gather.held) > 0 {
		s.release(p)
	}
	p.send(frames)
}

// release sends p's held replies, waking its writer once for all.
func (s *Server) release(p *peer) {
	g := &p.gather
	s.sock.Hold()
	for _, r := range g.held {
		s.sendReply(p, r)
	}
	s.sock.Flush()
	s.forget(p)
}

// sendReply sends p r's final reply, and r is done with (see retire).
func (s *Server) sendReply(p *peer, r *request) {
	p.send(r.reply)
	r.cseq = p.sent
	s.retire(r)
}

// forget drops p's held replies (sent, or p is gone).
func (s *Server) forget(p *peer) {
	g := &p.gather
	if len(g.held) == 0 {
		return
	}
	if p.gone {
		for _, r := range g.held {
			s.retire(r) // never sent
		}
	}
	clear(g.held)
	g.held, g.bytes = g.held[:0], 0
	last := len(s.gathering) - 1
	moved := s.gathering[last]
	s.gathering[g.at], moved.gather.at = moved, g.at
	s.gathering[last] = nil
	s.gathering = s.gathering[:last]
}

// releaseHeld sends every held reply.
func (s *Server) releaseHeld() {
	for len(s.gathering) > 0 {
		s.release(s.gathering[len(s.gathering)-1])
	}
}

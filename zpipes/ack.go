package zpipes

import (
	"fmt"

	"github.com/zbroker/zbroker/internal/deque"
)

// ackState is what an acknowledging reader holds of its pipe: every chunk
// taken for it and not yet acknowledged, in delivery order (the order of
// its READs' replies). A chunk stays taken until ACKed (then Consumed) or
// until the reader leaves (then Returned, in this order, to the head of
// the pipe). One per reader spell: a new reader starts a new one.
type ackState struct {
	chunks deque.Deque[Chunk]
	// written counts the chunks at the front known to be written in full
	// to the reader's socket; early those at the front acknowledged
	// before they were (the client was quicker than our count, or lied).
	// An early chunk is consumed once written: its memory may be in the
	// transport's send queue until then. Never both non-zero.
	written, early int
	// bytes and cost are the payload and the limits' charge of the
	// unacknowledged chunks; the cost stays in the server's total.
	bytes, cost int64
	// left: the reader left; what is still here is early, to be consumed
	// once written, and later deliveries of it are copies given back.
	left bool
}

// unacked is how many chunks the reader holds without acknowledgement.
func (a *ackState) unacked() int { return a.chunks.Len() - a.early }

// acks reports whether c opened p with ACK.
func (c *client) acks(p *pipe) bool {
	_, ok := c.acking[p]
	return ok
}

// atBound reports whether p's reader acknowledges and holds as many
// unacknowledged chunks as it may: its READs wait as on an empty pipe.
func (s *Server) atBound(p *pipe) bool {
	a := p.ack
	return a != nil && (a.unacked() >= s.opts.MaxUnacked || a.bytes >= s.opts.MaxUnackedBytes)
}

// draining reports whether a READ waits on p that takes the next chunk
// written at once: a write may then pass the memory limits, as it leaves
// at once. Not so while the reader is at its bound, or while the store
// holds back queued chunks.
func (s *Server) draining(p *pipe) bool {
	return len(p.waiting) > 0 && p.chunks == 0 && !s.atBound(p)
}

// open handles OPEN, with or without ACK.
func (s *Server) open(c *client, env [][]byte, name []byte, ack bool) {
	if p := c.open[string(name)]; p != nil {
		if c.acks(p) != ack {
			s.refuse(c, env, mismatch(ack))
			return
		}
		s.respond(c, env, okReply, delivery{}, 0)
		return
	}
	if len(c.open) >= s.opts.MaxPipesPerConnection {
		s.refusePipe(c, env)
		return
	}
	p := s.pipes[string(name)]
	if p == nil {
		p = newPipe(string(name), s.store.Queue(string(name)))
		s.pipes[p.name] = p
	}
	p.openers++
	c.open[p.name] = p
	if ack {
		if c.acking == nil {
			c.acking = map[*pipe]struct{}{}
		}
		c.acking[p] = struct{}{}
	}
	s.respond(c, env, okReply, delivery{}, 0)
}

func mismatch(ack bool) string {
	if ack {
		return "pipe already open on this connection without ACK (CLOSE it first)"
	}
	return "pipe already open on this connection with ACK (CLOSE it first)"
}

// acknowledge handles ACK / pipe / n: the reader's oldest n
// unacknowledged chunks are consumed (those not yet known written once
// they are).
func (s *Server) acknowledge(c *client, p *pipe, env [][]byte, n int) {
	if !c.acks(p) {
		s.refuse(c, env, "pipe not opened with ACK on this connection")
		return
	}
	a := p.ack
	if p.reader != c || a == nil {
		s.refuse(c, env, fmt.Sprintf("ACK of %d chunks, but this connection holds none unacknowledged", n))
		return
	}
	if held := a.unacked(); n > held {
		s.refuse(c, env, fmt.Sprintf("ACK of %d chunks, but this connection holds only %d unacknowledged", n, held))
		return
	}
	s.confirm(c) // count what the socket took
	wasBound := s.atBound(p)
	charge := func(ch Chunk) {
		cost := p.cost(ch.Data)
		a.bytes -= int64(len(ch.Data))
		a.cost -= cost
		s.total -= cost
	}
	done := min(n, a.written)
	cs := s.scratch[:0]
	for range done {
		ch := a.chunks.PopFront()
		charge(ch)
		cs = append(cs, ch)
	}
	a.written -= done
	// The rest are not known written yet: they stay at the front,
	// behind those acknowledged early before, until they are.
	for j := range n - done {
		charge(a.chunks.At(a.early + j))
	}
	a.early += n - done
	s.consume(p, cs)
	s.counts.acked += uint64(n)
	s.respond(c, env, okReply, delivery{}, 0)
	if wasBound && !s.atBound(p) {
		s.refill = append(s.refill, p)
	}
	s.admit(p)
}

// consume tells p's store that chunks taken from it reached their reader
// (or were acknowledged), and releases the pipe if that was all it held.
func (s *Server) consume(p *pipe, cs []Chunk) {
	if len(cs) == 0 {
		return
	}
	p.q.Consumed(cs)
	p.taken -= len(cs)
	clear(cs)
	s.scratch = cs[:0]
	s.release(p)
}

// hold records a chunk just taken for p's acknowledging reader: it stays
// charged against the limits until acknowledged.
func (s *Server) hold(p *pipe, ch Chunk) {
	a := p.ack
	a.chunks.PushBack(ch)
	cost := p.cost(ch.Data)
	a.bytes += int64(len(ch.Data))
	a.cost += cost
	s.total += cost
	if p.aw != nil {
		p.aw.AwaitAck(ch)
	}
}

// written handles a chunk of an acknowledging reader now written in full
// to its socket.
func (s *Server) ackWritten(p *pipe, a *ackState) {
	switch {
	case a.early > 0:
		a.early--
		s.consume(p, append(s.scratch[:0], a.chunks.PopFront()))
	case !a.left:
		a.written++
	}
	// else: a copy was given back when the reader left
}

// ackUnsent handles a chunk of an acknowledging reader that will never
// be written (its connection ended). If the reader had left the pipe
// having acknowledged it early, it is consumed now; otherwise it goes back
// as the reader leaves (or went back, a copy, when it left).
func (s *Server) ackUnsent(d delivery) {
	if a := d.ack; a.left && a.early > 0 {
		a.early--
		s.consume(d.p, append(s.scratch[:0], a.chunks.PopFront()))
	}
}

// ackLeave gives back what p's acknowledging reader holds unacknowledged,
// in delivery order, ahead of everything else in the pipe. alive: the
// connection lives on (CLOSE), so the transport may still write the
// chunks not known written; they go back as copies, and the originals
// still reach the client (an unacknowledged chunk may come twice).
// Otherwise chunks acknowledged early are consumed now.
func (s *Server) ackLeave(p *pipe, alive bool) {
	a := p.ack
	p.ack = nil
	a.left = true
	var early []Chunk
	for range a.early {
		early = append(early, a.chunks.PopFront())
	}
	back := make([]Chunk, 0, a.chunks.Len())
	for i := 0; a.chunks.Len() > 0; i++ {
		ch := a.chunks.PopFront()
		if alive && i >= a.written {
			ch.Data = append(make([]byte, 0, len(ch.Data)), ch.Data...)
		}
		back = append(back, ch)
	}
	a.written = 0
	s.total -= a.cost
	a.bytes, a.cost = 0, 0
	if len(back) > 0 {
		s.giveBack(p, back)
	}
	if alive {
		for _, ch := range early {
			a.chunks.PushBack(ch)
		}
		return
	}
	a.early = 0
	s.consume(p, early)
}

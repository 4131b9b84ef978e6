package majordomo

import "github.com/zbroker/zbroker/zmtp"

// The owner holds the messages it sends while it has more events waiting
// and hands them to the transport when it would block (or every
// fastEvents batches): a connection's writer, woken by the first message,
// then finds them all and writes them with one syscall instead of one
// each. Each peer's messages keep their order.

// send queues frames for p.
func (s *Server) send(p *peer, frames [][]byte) { s.sendRef(p, frames, nil) }

// sendRef is send with a reference that comes back in the Disconnected
// event's Unsent (or from p's outbox, see disconnect) if it was not
// written.
func (s *Server) sendRef(p *peer, frames [][]byte, ref any) {
	if p.gone {
		return
	}
	if len(p.outbox) == 0 {
		s.held = append(s.held, p)
	}
	p.outbox = append(p.outbox, zmtp.Outgoing{Frames: frames, Ref: ref})
}

// flush hands every held message to the transport.
func (s *Server) flush() {
	for i, p := range s.held {
		s.flushPeer(p)
		s.held[i] = nil
	}
	s.held = s.held[:0]
}

// flushPeer hands p's held messages to the transport.
func (s *Server) flushPeer(p *peer) {
	for i, o := range p.outbox {
		p.conn.SendRef(o.Frames, o.Ref)
		p.outbox[i] = zmtp.Outgoing{}
	}
	p.outbox = p.outbox[:0]
}

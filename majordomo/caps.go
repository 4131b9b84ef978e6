package majordomo

import (
	"context"
	"fmt"
	"log/slog"
)

// queuedSize is what a waiting request counts against the byte caps: its
// frames and 256 bytes for the rest of what the broker keeps.
func queuedSize(m *message) int64 {
	return int64(256+len(m.service)) + int64(framesLen(m.env)) + int64(framesLen(m.body))
}

// framesLen is the bytes of frames' bodies.
func framesLen(frames [][]byte) int {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	return n
}

// countQueued adds (sign 1) or removes (-1) a waiting request's bytes.
func countQueued(r *request, sign int64) {
	r.service.queuedBytes += sign * r.size
	r.client.queuedBytes += sign * r.size
}

// overByteCap refuses, with a 503 failure reply where the client asked
// for them (mmi.failures), a request that would take its service or its
// client past the queued-bytes caps. The first refusals of a client are
// logged at Warn, later ones at Debug.
func (s *Server) overByteCap(p *peer, svc *service, m *message, size int64) bool {
	var why string
	switch {
	case p.queuedBytes+size > s.opts.ClientQueueBytes:
		why = fmt.Sprintf("this client already has %d bytes of requests waiting for workers (limit %d)", p.queuedBytes, s.opts.ClientQueueBytes)
	case svc.queuedBytes+size > s.opts.ServiceQueueBytes:
		why = fmt.Sprintf("%d bytes of requests already waiting for a worker (limit %d)", svc.queuedBytes, s.opts.ServiceQueueBytes)
	default:
		return false
	}
	s.failures[CodeQueueFull]++
	p.capped++
	level := slog.LevelWarn
	if p.capped > 3 {
		level = slog.LevelDebug
	}
	s.log.Log(context.Background(), level, "request refused over a queue byte cap", "conn", p.conn.ID(), "peer", p.conn.Peer(),
		"mdp_service", printable(svc.name), "code", CodeQueueFull, "reason", why, "count", p.capped)
	if p.wantsFailures {
		s.toClient(p, encodeFailure(m.version, m.env, CodeQueueFull, svc.name, why))
	}
	return true
}

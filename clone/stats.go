package clone

import (
	"context"

	"github.com/zbroker/zbroker/internal/owner"
	"github.com/zbroker/zbroker/internal/topn"
	"github.com/zbroker/zbroker/zmtp"
)

// ConnInfo describes one connection to the updates or collector endpoint.
type ConnInfo struct {
	ID     uint64
	Peer   zmtp.Peer // uid and pid (ipc) or address (tcp)
	Type   string    // its socket type
	Role   string    // "subscriber" (updates) or "publisher" (collector)
	Topics int       // a subscriber's prefixes
}

// Snapshot is the server's state in detail, for monitoring.
type Snapshot struct {
	Stats
	Conns []ConnInfo // the oldest connections first
}

// Snapshot takes a snapshot on the owning goroutine, listing at most limit
// connections (the oldest). It fails with owner.ErrStopped after Close, or
// with ctx's error if the server does not answer in time.
func (s *Server) Snapshot(ctx context.Context, limit int) (Snapshot, error) {
	var snap Snapshot
	err := owner.DoContext(ctx, s.calls, s.stopped, func() {
		snap.Stats = s.stats()
		conns := topn.New(limit, func(a, b ConnInfo) bool { return a.ID < b.ID })
		for c, sub := range s.subs {
			conns.Add(ConnInfo{ID: c.ID(), Peer: c.Peer(), Type: c.PeerType(), Role: "subscriber", Topics: len(sub.topics)})
		}
		for c := range s.producers {
			conns.Add(ConnInfo{ID: c.ID(), Peer: c.Peer(), Type: c.PeerType(), Role: "publisher"})
		}
		snap.Conns = conns.Sorted()
	})
	return snap, err
}

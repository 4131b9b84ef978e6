package zpipes

import (
	"context"

	"github.com/zbroker/zbroker/internal/owner"
	"github.com/zbroker/zbroker/internal/topn"
	"github.com/zbroker/zbroker/zmtp"
)

// counters are running totals kept by the owning goroutine for monitoring.
type counters struct {
	written  uint64 // chunks accepted from writers
	read     uint64 // chunks handed to readers
	returned uint64 // chunks taken back from readers that died first or left unacknowledged
	acked    uint64 // chunks acknowledged by acknowledging readers
}

// PipeInfo describes one pipe.
type PipeInfo struct {
	Name       string // the name's bytes, which need not be UTF-8
	Chunks     int    // chunks queued
	Bytes      int64  // their cost against the limits
	Writers    int    // connections with the pipe open that have written to it
	Reader     bool   // a connection has taken the reader role
	HeldWrites int    // WRITEs held back by the memory limits
	// Unacked and UnackedBytes are the chunks an acknowledging reader
	// holds unacknowledged, and their payload bytes.
	Unacked      int
	UnackedBytes int64
}

// ConnInfo describes one client connection.
type ConnInfo struct {
	ID     uint64
	Peer   zmtp.Peer // uid and pid (ipc) or address (tcp)
	Type   string    // its socket type
	Pipes  int       // pipes it has open
	Owed   int       // replies it is owed (waiting READs, held WRITEs, ...)
	Paused bool      // its commands are not being read (backpressure)
}

// Snapshot is the broker's state in detail, for monitoring.
type Snapshot struct {
	Stats
	// Totals since the broker started. A chunk returned (its reader died
	// before receiving it, or left without acknowledging it) is counted
	// again when it is read again.
	Written, Read, Returned, Acked uint64
	Deepest                        []PipeInfo // the deepest pipes, deepest first
	Conns                          []ConnInfo // the oldest connections first
}

// Snapshot takes a snapshot on the owning goroutine, listing at most limit
// pipes (the deepest: most chunks, then most bytes) and limit connections
// (the oldest). It fails with owner.ErrStopped after Close, or with ctx's
// error if the broker does not answer in time.
func (s *Server) Snapshot(ctx context.Context, limit int) (Snapshot, error) {
	var snap Snapshot
	err := owner.DoContext(ctx, s.calls, s.stopped, func() {
		snap.Stats = s.snapshot()
		snap.Written, snap.Read, snap.Returned, snap.Acked = s.counts.written, s.counts.read, s.counts.returned, s.counts.acked
		pipes := topn.New(limit, deeper)
		for _, p := range s.pipes {
			pipes.Add(p.info())
		}
		snap.Deepest = pipes.Sorted()
		conns := topn.New(limit, func(a, b ConnInfo) bool { return a.ID < b.ID })
		for _, c := range s.clients {
			conns.Add(ConnInfo{ID: c.conn.ID(), Peer: c.conn.Peer(), Type: c.conn.PeerType(),
				Pipes: len(c.open), Owed: len(c.slots), Paused: c.paused})
		}
		snap.Conns = conns.Sorted()
	})
	return snap, err
}

func deeper(a, b PipeInfo) bool {
	if a.Chunks != b.Chunks {
		return a.Chunks > b.Chunks
	}
	if a.Bytes != b.Bytes {
		return a.Bytes > b.Bytes
	}
	return a.Name < b.Name
}

func (p *pipe) info() PipeInfo {
	pi := PipeInfo{Name: p.name, Chunks: p.chunks, Bytes: p.bytes, Reader: p.reader != nil, HeldWrites: len(p.stalled)}
	if p.ack != nil {
		pi.Unacked, pi.UnackedBytes = p.ack.unacked(), p.ack.bytes
	}
	for c := range p.writers {
		if c.open[p.name] == p {
			pi.Writers++
		}
	}
	return pi
}

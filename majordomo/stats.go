package majordomo

import (
	"context"
	"maps"

	"github.com/zbroker/zbroker/internal/owner"
	"github.com/zbroker/zbroker/internal/topn"
	"github.com/zbroker/zbroker/zmtp"
)

// ServiceInfo describes one service.
type ServiceInfo struct {
	Name     string // the name's bytes, which need not be UTF-8
	Workers  int
	Idle     int // workers waiting for a request
	Queued   int // requests waiting for a worker
	InFlight int // requests held by a worker
}

// PeerInfo describes one connection.
type PeerInfo struct {
	ID      uint64
	Peer    zmtp.Peer // uid and pid (ipc) or address (tcp)
	Type    string    // its socket type
	Service string    // the service it is a worker for, if it is one
	Worker  bool
	Pending int  // its requests as a client, waiting or being worked on
	Paused  bool // its messages are not being read (backpressure)
}

// Snapshot is the broker's state in detail, for monitoring.
type Snapshot struct {
	Stats
	Requests uint64            // requests accepted since the start (MMI excluded)
	Failures map[string]uint64 // requests failed since the start, by code
	Services []ServiceInfo     // the busiest services first
	Conns    []PeerInfo        // the oldest connections first
}

// Snapshot takes a snapshot on the owning goroutine, listing at most limit
// services (most queued, then most in flight, then most workers) and limit
// connections (the oldest). It fails with owner.ErrStopped after Close, or
// with ctx's error if the broker does not answer in time.
func (s *Server) Snapshot(ctx context.Context, limit int) (Snapshot, error) {
	var snap Snapshot
	err := owner.DoContext(ctx, s.calls, s.stopped, func() {
		snap.Stats = s.snapshot()
		snap.Requests = s.nextID
		snap.Failures = maps.Clone(s.failures)
		inflight := map[*service]int{}
		for w := range s.workers {
			if w.current != nil {
				inflight[w.service]++
			}
		}
		svcs := topn.New(limit, busier)
		for _, svc := range s.services {
			svcs.Add(ServiceInfo{Name: string(svc.name), Workers: svc.workers, Idle: svc.nidle,
				Queued: svc.queued, InFlight: inflight[svc]})
		}
		snap.Services = svcs.Sorted()
		conns := topn.New(limit, func(a, b PeerInfo) bool { return a.ID < b.ID })
		for _, p := range s.peers {
			pi := PeerInfo{ID: p.conn.ID(), Peer: p.conn.Peer(), Type: p.conn.PeerType(),
				Pending: p.pending, Paused: p.paused}
			if w := p.worker; w != nil {
				pi.Worker, pi.Service = true, string(w.service.name)
			}
			conns.Add(pi)
		}
		snap.Conns = conns.Sorted()
	})
	return snap, err
}

func busier(a, b ServiceInfo) bool {
	switch {
	case a.Queued != b.Queued:
		return a.Queued > b.Queued
	case a.InFlight != b.InFlight:
		return a.InFlight > b.InFlight
	case a.Workers != b.Workers:
		return a.Workers > b.Workers
	}
	return a.Name < b.Name
}

// Package observe shows what a running broker holds: a Report gathered
// from each service's owning goroutine, served over HTTP as Prometheus
// metrics, JSON and a health check, and over an ipc control endpoint for
// `zbroker status`.
package observe

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/zbroker/zbroker/clone"
	"github.com/zbroker/zbroker/majordomo"
	"github.com/zbroker/zbroker/zmtp"
	"github.com/zbroker/zbroker/zpipes"
)

// Broker names the services of one running broker; a nil service is not
// served.
type Broker struct {
	Name      string
	Zpipes    *zpipes.Server
	Majordomo *majordomo.Server
	Clone     *clone.Server
}

// DefaultLimit is how many pipes, Majordomo services and connections per
// service a Report lists by default.
const DefaultLimit = 100

// queryTimeout bounds how long a Report waits for one service; a service
// that does not answer in time is reported as not serving.
const queryTimeout = 2 * time.Second

// Report is a broker's state at one moment, as /stats serves it.
type Report struct {
	Broker    string           `json:"broker"`
	Time      time.Time        `json:"time"`
	Healthy   bool             `json:"healthy"` // every service served is answering
	Limit     int              `json:"limit"`   // the most pipes, services, connections listed
	Zpipes    *ZpipesReport    `json:"zpipes,omitempty"`
	Majordomo *MajordomoReport `json:"majordomo,omitempty"`
	Clone     *CloneReport     `json:"clone,omitempty"`
}

// Health is whether a service answered its snapshot query.
type Health struct {
	Serving bool   `json:"serving"`
	Error   string `json:"error,omitempty"` // why not
}

// Conn is one connection to a service.
type Conn struct {
	ID   uint64 `json:"id"`
	Type string `json:"type"` // the peer's socket type
	// UID and PID identify an ipc peer, Addr a tcp peer.
	UID  *int   `json:"uid,omitempty"`
	PID  *int   `json:"pid,omitempty"`
	Addr string `json:"addr,omitempty"`
	// Role and Detail say what the connection does, per service.
	Role   string `json:"role,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// ZpipesReport is the zpipes service's part of a Report.
type ZpipesReport struct {
	Health
	Connections    int    `json:"connections"`
	Pipes          int    `json:"pipes"`
	QueuedChunks   int    `json:"queued_chunks"`
	QueuedBytes    int64  `json:"queued_bytes"`
	HeldWrites     int    `json:"held_writes"`
	Unacked        int    `json:"unacked"` // chunks held by acknowledging readers
	ChunksWritten  uint64 `json:"chunks_written"`
	ChunksRead     uint64 `json:"chunks_read"`
	ChunksReturned uint64 `json:"chunks_returned"`
	ChunksAcked    uint64 `json:"chunks_acked"`
	PipeList       []Pipe `json:"pipe_list"` // the deepest first
	ConnList       []Conn `json:"connection_list"`
}

// Pipe is one pipe. Its name is escaped by EscapeName.
type Pipe struct {
	Name       string `json:"name"`
	Depth      int    `json:"depth"` // chunks queued
	Bytes      int64  `json:"bytes"` // their cost against the memory limits
	Writers    int    `json:"writers"`
	Reader     bool   `json:"reader"`
	HeldWrites int    `json:"held_writes"`
	Unacked    int    `json:"unacked"` // chunks its acknowledging reader holds unacknowledged
}

// MajordomoReport is the Majordomo service's part of a Report.
type MajordomoReport struct {
	Health
	Connections int               `json:"connections"`
	Services    int               `json:"services"`
	Workers     int               `json:"workers"`
	IdleWorkers int               `json:"idle_workers"`
	Queued      int               `json:"queued"`
	InFlight    int               `json:"in_flight"`
	Requests    uint64            `json:"requests"`
	Failures    map[string]uint64 `json:"failures"` // requests failed, by code
	ServiceList []Service         `json:"service_list"`
	ConnList    []Conn            `json:"connection_list"`
}

// Service is one Majordomo service. Its name is escaped by EscapeName.
type Service struct {
	Name     string `json:"name"`
	Workers  int    `json:"workers"`
	Idle     int    `json:"idle"`
	Queued   int    `json:"queued"`
	InFlight int    `json:"in_flight"`
}

// CloneReport is the Clone service's part of a Report.
type CloneReport struct {
	Health
	Keys        int    `json:"keys"`
	Sequence    uint64 `json:"sequence"`
	Subscribers int    `json:"subscribers"`
	Publishers  int    `json:"publishers"`
	Updates     uint64 `json:"updates"`
	Expired     uint64 `json:"expired"`
	Snapshots   uint64 `json:"snapshots"`
	Rejected    uint64 `json:"rejected"`
	ConnList    []Conn `json:"connection_list"`
}

// Report takes a snapshot of every service, listing at most limit pipes,
// Majordomo services and connections per service (the deepest pipes, the
// busiest services, the oldest connections).
func (b *Broker) Report(ctx context.Context, limit int) Report {
	// The services are asked at once, each with its own deadline, so one
	// that is stuck neither delays nor fails the others.
	var (
		wg         sync.WaitGroup
		zs         zpipes.Snapshot
		ms         majordomo.Snapshot
		ks         clone.Snapshot
		zerr, merr error
		kerr       error
	)
	ask := func(f func(context.Context)) {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, queryTimeout)
			defer cancel()
			f(ctx)
		})
	}
	if b.Zpipes != nil {
		ask(func(ctx context.Context) { zs, zerr = b.Zpipes.Snapshot(ctx, limit) })
	}
	if b.Majordomo != nil {
		ask(func(ctx context.Context) { ms, merr = b.Majordomo.Snapshot(ctx, limit) })
	}
	if b.Clone != nil {
		ask(func(ctx context.Context) { ks, kerr = b.Clone.Snapshot(ctx, limit) })
	}
	wg.Wait()

	r := Report{Broker: b.Name, Time: time.Now().UTC(), Healthy: true, Limit: limit}
	health := func(err error) Health {
		if err != nil {
			r.Healthy = false
			return Health{Error: err.Error()}
		}
		return Health{Serving: true}
	}
	if b.Zpipes != nil {
		s, err := zs, zerr
		r.Zpipes = &ZpipesReport{Health: health(err), Connections: s.Clients, Pipes: s.Stats.Pipes,
			QueuedChunks: s.Chunks, QueuedBytes: s.QueuedBytes, HeldWrites: s.Stalled, Unacked: s.Unacked,
			ChunksWritten: s.Written, ChunksRead: s.Read, ChunksReturned: s.Returned, ChunksAcked: s.Acked,
			PipeList: []Pipe{}, ConnList: []Conn{}}
		for _, p := range s.Deepest {
			r.Zpipes.PipeList = append(r.Zpipes.PipeList, Pipe{Name: EscapeName(p.Name), Depth: p.Chunks,
				Bytes: p.Bytes, Writers: p.Writers, Reader: p.Reader, HeldWrites: p.HeldWrites, Unacked: p.Unacked})
		}
		for _, c := range s.Conns {
			r.Zpipes.ConnList = append(r.Zpipes.ConnList, connOf(c.ID, c.Type, c.Peer, "", zpipesDetail(c)))
		}
	}
	if b.Majordomo != nil {
		s, err := ms, merr
		r.Majordomo = &MajordomoReport{Health: health(err), Connections: s.Peers, Services: s.Stats.Services,
			Workers: s.Workers, IdleWorkers: s.IdleWorkers, Queued: s.Queued, InFlight: s.InFlight,
			Requests: s.Requests, Failures: s.Failures, ServiceList: []Service{}, ConnList: []Conn{}}
		if r.Majordomo.Failures == nil {
			r.Majordomo.Failures = map[string]uint64{}
		}
		for _, v := range s.Services {
			r.Majordomo.ServiceList = append(r.Majordomo.ServiceList, Service{Name: EscapeName(v.Name),
				Workers: v.Workers, Idle: v.Idle, Queued: v.Queued, InFlight: v.InFlight})
		}
		for _, c := range s.Conns {
			conn := connOf(c.ID, c.Type, c.Peer, "client", fmt.Sprintf("%d pending", c.Pending))
			if c.Worker {
				conn.Role, conn.Detail = "worker", "service "+EscapeName(c.Service)
			}
			if c.Paused {
				conn.Detail += ", paused"
			}
			r.Majordomo.ConnList = append(r.Majordomo.ConnList, conn)
		}
	}
	if b.Clone != nil {
		s, err := ks, kerr
		r.Clone = &CloneReport{Health: health(err), Keys: s.Keys, Sequence: s.Sequence, Subscribers: s.Subscribers,
			Publishers: s.Publishers, Updates: s.Updates, Expired: s.Expired, Snapshots: s.Snapshots,
			Rejected: s.Rejected, ConnList: []Conn{}}
		for _, c := range s.Conns {
			conn := connOf(c.ID, c.Type, c.Peer, c.Role, "")
			if c.Role == "subscriber" {
				conn.Detail = fmt.Sprintf("%d prefixes", c.Topics)
			}
			r.Clone.ConnList = append(r.Clone.ConnList, conn)
		}
	}
	return r
}

func zpipesDetail(c zpipes.ConnInfo) string {
	d := fmt.Sprintf("%d pipes open, %d replies owed", c.Pipes, c.Owed)
	if c.Paused {
		d += ", paused"
	}
	return d
}

func connOf(id uint64, typ string, p zmtp.Peer, role, detail string) Conn {
	c := Conn{ID: id, Type: typ, Addr: p.Addr, Role: role, Detail: detail}
	if p.Addr == "" {
		c.UID, c.PID = &p.UID, &p.PID
	}
	return c
}

package observe

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// descs is every family metric made, so Describe cannot miss one.
var descs []*prometheus.Desc

// metric describes one family; the collector emits them from a Report.
func metric(name, help string, labels ...string) *prometheus.Desc {
	d := prometheus.NewDesc("zbroker_"+name, help, labels, nil)
	descs = append(descs, d)
	return d
}

var (
	descUp          = metric("up", "Whether the service answered its snapshot query (1) or not (0).", "service")
	descConnections = metric("connections", "Connections to the service.", "service")

	descPipeChunks  = metric("pipe_queued_chunks", "Chunks queued in the pipe (the deepest pipes only, see zbroker_pipes_unlisted).", "pipe")
	descPipeBytes   = metric("pipe_queued_bytes", "Bytes queued in the pipe, as charged against the memory limits (64 per chunk beyond its payload and name).", "pipe")
	descPipeWriters = metric("pipe_writers", "Connections with the pipe open that have written to it.", "pipe")
	descPipeReader  = metric("pipe_reader", "1 if a connection has taken the pipe's reader role.", "pipe")
	descPipeHeld    = metric("pipe_held_writes", "WRITEs to the pipe held back by the memory limits.", "pipe")
	descPipeUnacked = metric("pipe_unacked_chunks", "Chunks the pipe's acknowledging reader holds unacknowledged (they come back if it leaves).", "pipe")
	descPipes       = metric("pipes", "Pipes held open or holding chunks.")
	descUnlisted    = metric("pipes_unlisted", "Pipes left out of the per-pipe series (only the deepest are listed).")
	descChunks      = metric("pipes_queued_chunks", "Chunks queued in all pipes.")
	descBytes       = metric("pipes_queued_bytes", "Bytes queued in all pipes, as charged against --total-limit (chunks held unacknowledged included).")
	descHeld        = metric("pipes_held_writes", "WRITEs held back by the memory limits in all pipes.")
	descUnacked     = metric("pipes_unacked_chunks", "Chunks held unacknowledged by acknowledging readers, all pipes.")
	descWritten     = metric("pipe_chunks_written_total", "Chunks accepted from writers.")
	descRead        = metric("pipe_chunks_read_total", "Chunks handed to readers (a returned chunk counts again when read again).")
	descReturned    = metric("pipe_chunks_returned_total", "Chunks taken back from readers that disconnected before receiving them, or left without acknowledging them.")
	descAcked       = metric("pipe_chunks_acked_total", "Chunks acknowledged by acknowledging readers.")

	descMdpServices = metric("mdp_services", "Majordomo services with workers or waiting requests.")
	descMdpUnlisted = metric("mdp_services_unlisted", "Majordomo services left out of the per-service series (only the busiest are listed).")
	descMdpWorkers  = metric("mdp_service_workers", "Registered Majordomo workers of the service.", "service")
	descMdpIdle     = metric("mdp_service_idle_workers", "Majordomo workers of the service waiting for a request.", "service")
	descMdpQueued   = metric("mdp_service_queued_requests", "Requests waiting for a worker of the service.", "service")
	descMdpInFlight = metric("mdp_service_inflight_requests", "Requests held by a worker of the service.", "service")
	descMdpWorkersT = metric("mdp_workers", "Registered Majordomo workers, all services.")
	descMdpIdleT    = metric("mdp_idle_workers", "Majordomo workers waiting for a request, all services.")
	descMdpQueuedT  = metric("mdp_queued_requests", "Requests waiting for a worker, all services.")
	descMdpFlightT  = metric("mdp_inflight_requests", "Requests held by a worker, all services.")
	descMdpRequests = metric("mdp_requests_total", "Majordomo requests accepted (MMI queries excluded).")
	descMdpFailures = metric("mdp_failures_total", "Majordomo requests failed, by code (400, 502, 503, 504); only clients that ask (mmi.failures) get a failure reply.", "code")

	descCloneKeys      = metric("clone_keys", "Keys held by Clone.")
	descCloneSequence  = metric("clone_sequence", "The last sequence number Clone assigned.")
	descCloneSubs      = metric("clone_subscribers", "Connections to Clone's updates endpoint.")
	descClonePubs      = metric("clone_publishers", "Connections to Clone's collector endpoint.")
	descCloneUpdates   = metric("clone_updates_total", "Updates Clone accepted from its collector.")
	descCloneExpired   = metric("clone_expired_total", "Ephemeral Clone values expired.")
	descCloneSnapshots = metric("clone_snapshots_total", "Clone snapshot requests (ICANHAZ?) answered.")
	descCloneRejected  = metric("clone_rejected_total", "Malformed or refused Clone messages dropped.")
)

// collector turns one Report per scrape into metrics: the services'
// state is owned by their goroutines, so it is asked for, not shared.
type collector struct {
	rp    *reporter
	limit int
}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descs {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	r, _ := c.rp.report(context.Background(), c.limit) // never fails without a deadline
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	up := func(service string, h Health) bool {
		gauge(descUp, b2f(h.Serving), service)
		return h.Serving
	}
	if z := r.Zpipes; z != nil && up("zpipes", z.Health) {
		gauge(descConnections, float64(z.Connections), "zpipes")
		for _, p := range z.PipeList {
			gauge(descPipeChunks, float64(p.Depth), p.Name)
			gauge(descPipeBytes, float64(p.Bytes), p.Name)
			gauge(descPipeWriters, float64(p.Writers), p.Name)
			gauge(descPipeReader, b2f(p.Reader), p.Name)
			gauge(descPipeHeld, float64(p.HeldWrites), p.Name)
			gauge(descPipeUnacked, float64(p.Unacked), p.Name)
		}
		gauge(descPipes, float64(z.Pipes))
		gauge(descUnlisted, float64(z.Pipes-len(z.PipeList)))
		gauge(descChunks, float64(z.QueuedChunks))
		gauge(descBytes, float64(z.QueuedBytes))
		gauge(descHeld, float64(z.HeldWrites))
		gauge(descUnacked, float64(z.Unacked))
		counter(descWritten, z.ChunksWritten)
		counter(descRead, z.ChunksRead)
		counter(descReturned, z.ChunksReturned)
		counter(descAcked, z.ChunksAcked)
	}
	if m := r.Majordomo; m != nil && up("majordomo", m.Health) {
		gauge(descConnections, float64(m.Connections), "majordomo")
		gauge(descMdpServices, float64(m.Services))
		for _, s := range m.ServiceList {
			gauge(descMdpWorkers, float64(s.Workers), s.Name)
			gauge(descMdpIdle, float64(s.Idle), s.Name)
			gauge(descMdpQueued, float64(s.Queued), s.Name)
			gauge(descMdpInFlight, float64(s.InFlight), s.Name)
		}
		gauge(descMdpUnlisted, float64(m.Services-len(m.ServiceList)))
		gauge(descMdpWorkersT, float64(m.Workers))
		gauge(descMdpIdleT, float64(m.IdleWorkers))
		gauge(descMdpQueuedT, float64(m.Queued))
		gauge(descMdpFlightT, float64(m.InFlight))
		counter(descMdpRequests, m.Requests)
		for code, n := range m.Failures {
			counter(descMdpFailures, n, code)
		}
	}
	if k := r.Clone; k != nil && up("clone", k.Health) {
		gauge(descConnections, float64(k.Subscribers+k.Publishers), "clone")
		gauge(descCloneKeys, float64(k.Keys))
		gauge(descCloneSequence, float64(k.Sequence))
		gauge(descCloneSubs, float64(k.Subscribers))
		gauge(descClonePubs, float64(k.Publishers))
		counter(descCloneUpdates, k.Updates)
		counter(descCloneExpired, k.Expired)
		counter(descCloneSnapshots, k.Snapshots)
		counter(descCloneRejected, k.Rejected)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// newRegistry is a registry of the broker's metrics and the Go runtime's
// and process's own, limit being the most pipes and Majordomo services
// given series of their own.
func newRegistry(rp *reporter, limit int) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{rp, limit},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

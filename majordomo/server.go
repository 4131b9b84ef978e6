package majordomo

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/zbroker/zbroker/internal/deque"
	"github.com/zbroker/zbroker/internal/owner"
	"github.com/zbroker/zbroker/zmtp"
)

// Options configure a Majordomo broker. Zero fields take their defaults.
type Options struct {
	// Name of the broker; it serves Endpoint(Name). Default "default".
	Name string
	// Endpoint overrides the endpoint derived from Name (e.g.
	// "tcp://*:5555").
	Endpoint string
	// HeartbeatInterval is how often the broker heartbeats each worker and
	// expects to hear from it. Default 2500 ms, as in the specs.
	HeartbeatInterval time.Duration
	// HeartbeatLiveness is how many intervals a worker may stay silent
	// before it is expired and its request given to another worker.
	// Default 3.
	HeartbeatLiveness int
	// RequestQueueLimit bounds the requests waiting for a worker in one
	// service; past it new requests get a 503 failure reply at once.
	// Default 10000.
	RequestQueueLimit int
	// ServiceQueueBytes and ClientQueueBytes bound the bytes of requests
	// waiting for a worker in one service and from one client (each
	// request counts 256 bytes beyond its frames, so empty ones count
	// too); past either, new requests get a 503 failure reply at once.
	// A client's cap is what stops a flood of requests for absent
	// services. Defaults 256 MiB and 64 MiB.
	ServiceQueueBytes int64
	ClientQueueBytes  int64
	// RequestTimeout bounds how long a request waits for a worker (each
	// time it is queued); then it gets a 504 failure reply. Default 30s.
	RequestTimeout time.Duration
	// MaxAttempts bounds how many workers a request is given to when
	// workers die or expire while holding it; then it gets a 502 failure
	// reply. Default 3.
	MaxAttempts int
	// BusyTimeout is how long a worker holding a request may stay silent
	// (no reply, no heartbeat) on a live connection before it is expired:
	// single-threaded workers such as the zguide's mdwrkapi do not
	// heartbeat while they work. Its request then fails (504) instead of
	// going to another worker, as the first may still be working on it.
	// Default 15 minutes.
	BusyTimeout time.Duration
	// MaxPending bounds the requests of one client connection that are
	// waiting for a worker or being worked on; past it the broker stops
	// reading that connection until workers answer some (backpressure on
	// that client only; it does not depend on the client reading).
	// Default 1000.
	MaxPending int
	// ClientQueueLimit bounds the bytes of replies waiting to be written
	// to one client. Past it the broker stops reading that client (it
	// may pipeline any number of requests before reading replies, up to
	// this many bytes of replies), and a worker streaming PARTIALs to it
	// is not read until the client has read half of them. Default 64 MiB.
	ClientQueueLimit int64
	// MaxMessageSize bounds one incoming message; a peer sending more is
	// disconnected by the transport. Default 256 MiB.
	MaxMessageSize int64
	Logger         *slog.Logger
	// Guard admits peers (see zmtp.Access); share one between services to
	// make its limits broker-wide. Default: our own uid and root only.
	Guard *zmtp.Guard
	// Curve puts the tcp endpoints on CURVE (docs/curve.md): clients
	// must know the server's key and, if Curve.Authorize says so, hold an
	// admitted key. ipc endpoints keep NULL under the Guard's rules.
	Curve *zmtp.CurveOptions
}

// WithDefaults returns o with its zero fields set to their defaults: the
// values a Server started with o uses.
func (o Options) WithDefaults() Options {
	if o.Name == "" {
		o.Name = "default"
	}
	if o.Endpoint == "" {
		o.Endpoint = Endpoint(o.Name)
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = 2500 * time.Millisecond
	}
	if o.HeartbeatLiveness <= 0 {
		o.HeartbeatLiveness = 3
	}
	if o.RequestQueueLimit <= 0 {
		o.RequestQueueLimit = 10000
	}
	if o.ServiceQueueBytes <= 0 {
		o.ServiceQueueBytes = 256 << 20
	}
	if o.ClientQueueBytes <= 0 {
		o.ClientQueueBytes = 64 << 20
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 30 * time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 3
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 15 * time.Minute
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 1000
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = 256 << 20
	}
	if o.ClientQueueLimit <= 0 {
		o.ClientQueueLimit = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Stats is a snapshot of the broker's state.
type Stats struct {
	Peers       int // live connections (clients and workers)
	Services    int // services with workers or waiting requests
	Workers     int // registered workers
	IdleWorkers int // of which waiting for a request
	Queued      int // requests waiting for a worker
	InFlight    int // requests held by a worker
}

// Server is a running Majordomo broker. All broker state is owned by one
// goroutine fed by the transport's events, so there are no locks.
type Server struct {
	opts      Options
	log       *slog.Logger
	sock      *zmtp.Socket
	tick      time.Duration
	calls     chan func() // run by the owner: ticks, Stats, Close, stats.go...
	stopped   chan struct{}
	closeOnce sync.Once
	final     Stats

	closing  bool
	now      time.Time
	peers    map[*zmtp.Conn]*peer
	services map[string]*service
	workers  map[*worker]struct{}
	queued   int
	inflight int
	nextID   uint64
	expired  []*worker
	failures map[string]uint64 // requests failed, by code
	// gathering lists the clients with held replies, gatherTimer bounds
	// how long they wait (gather.go).
	gathering      []*peer
	gatherTimer    *time.Timer
	gatherArmed    bool
	gatherWait     time.Duration
	gatherBackstop time.Duration
	gatherGap      time.Duration
	// spares are answered requests to reuse (reuse.go).
	spares deque.Deque[*request]
}

// peer is one connection: a client, a worker, or (rarely) both.
type peer struct {
	conn    *zmtp.Conn
	worker  *worker
	defunct bool // sent DISCONNECT: its worker commands are ignored
	gone    bool
	// queues holds this client's waiting requests, per service.
	queues      map[*service]*clientQueue
	pending     int // requests waiting or held by a worker
	paused      bool
	bad         int   // malformed messages seen, to limit logging
	capped      int   // requests refused over a byte cap, to limit logging
	queuedBytes int64 // of its requests waiting for workers, see queuedSize
	// wantsFailures: the client asked for failure replies (MMIFailures).
	// Others get only what RFC 7/18 define: no reply, so they time out
	// and retry.
	wantsFailures bool
	gather        gatherState // its held replies, see gather.go
	// sent counts the messages passed to conn's Send, which the
	// transport's Written count is compared with (see written).
	sent uint64
}

// send sends frames to p; every Send to a peer's connection goes through
// send or sendRef, so that sent stays exact.
func (p *peer) send(frames [][]byte) { p.sendRef(frames, nil) }

func (p *peer) sendRef(frames [][]byte, ref any) {
	p.sent++
	p.conn.SendRef(frames, ref)
}

// written reports whether the transport is done with the seq-th message
// sent to p: written in full, or p's connection is gone (its Disconnected
// event comes after its writer has ended).
func (p *peer) written(seq uint64) bool { return p.gone || p.conn.Written() >= seq }

type clientQueue struct {
	peer *peer
	reqs deque.Deque[*request]
}

type request struct {
	id uint64
	// addr is the client address frame given to workers: id, 8 bytes
	// big-endian. (An array, not a slice: the struct stays within 512
	// bytes, the allocator's cheaper size classes.)
	addr     [8]byte
	client   *peer
	env      [][]byte
	version  Version
	service  *service
	body     [][]byte
	attempts int
	partials int
	deadline time.Time
	size     int64 // queuedSize, fixed when it arrives
	// lists holds, for a typical request, the copies of env and body and
	// the frame lists of the messages built for it (its REQUEST and its
	// final reply), so that a request costs one allocation: room for a
	// one-frame body behind one envelope frame, given to a worker behind
	// one (MDP/0.1 client and worker: 1 + 1 + 6 + 5 frames; 0.2 needs
	// 10). free is what carve has not handed out.
	lists [14][]byte
	free  [][]byte
	// For reuse (reuse.go): how many REQUESTs were sent for it, the
	// worker of the last and its number among the messages sent to that
	// worker, its final reply while held for gathering, and that
	// reply's number among the messages sent to its client.
	sends  int
	worker *peer
	wseq   uint64
	reply  [][]byte
	cseq   uint64
}

// carve returns an empty list with room for n frames from *free, the
// unused part of an array of lists, or a new one when too little is left.
// A part is never handed out twice (a REQUEST given to a lost worker may
// still be being written when its request goes to the next one), and each
// list is capped, so appending to one never runs into the next.
func carve(free *[][]byte, n int) [][]byte {
	if len(*free) < n {
		return make([][]byte, 0, n)
	}
	l := (*free)[:0:n]
	*free = (*free)[n:]
	return l
}

// listBlock hands out frame lists for messages that only the transport
// keeps, until it has written them (a client's requests, a worker's
// replies): one allocation per listBlockSize frames instead of one per
// message. Handed-out lists are capped, so appending to one never runs
// into the next. What a block keeps alive after its messages are written
// is bounded by its size: the frames of a few messages.
type listBlock struct{ free [][]byte }

const listBlockSize = 64

func (b *listBlock) take(n int) [][]byte {
	if len(b.free) < n {
		b.free = make([][]byte, max(listBlockSize, n))
	}
	return carve(&b.free, n)
}

type worker struct {
	peer     *peer
	env      [][]byte
	version  Version
	service  *service
	current  *request
	assigned time.Time // when current was given to it
	lastRecv time.Time
	lastSent time.Time
	// streamHeld: the worker is not being read because the client it
	// streams PARTIALs to has not read enough of them.
	streamHeld bool
	// Idle workers form a least-recently-used list per service.
	inIdle     bool
	prev, next *worker
}

type service struct {
	name     []byte
	workers  int
	idleHead *worker
	idleTail *worker
	nidle    int
	// rr serves clients round robin; each client's requests stay FIFO.
	rr          deque.Deque[*clientQueue]
	queued      int
	queuedBytes int64 // see queuedSize
}

func (svc *service) pushIdle(w *worker) {
	w.inIdle, w.prev, w.next = true, svc.idleTail, nil
	if svc.idleTail != nil {
		svc.idleTail.next = w
	} else {
		svc.idleHead = w
	}
	svc.idleTail = w
	svc.nidle++
}

func (svc *service) removeIdle(w *worker) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		svc.idleHead = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		svc.idleTail = w.prev
	}
	w.inIdle, w.prev, w.next = false, nil, nil
	svc.nidle--
}

// Start binds the broker's endpoint and starts serving. It fails with an
// error wrapping zmtp.ErrAddrInUse if a broker of that name runs already.
func Start(opts Options) (*Server, error) {
	opts = opts.WithDefaults()
	log := opts.Logger.With("service", "majordomo")
	sock, err := zmtp.Listen(opts.Endpoint, zmtp.Options{
		SocketType:     "ROUTER",
		MaxMessageSize: opts.MaxMessageSize,
		// A client may send all its requests before reading any reply
		// (the zguide's mdclient2): its replies are bounded by bytes,
		// not by libzmq's customary 1,000 messages, which would stop
		// reading it while it is blocked sending: a deadlock. The
		// message bound only charges tiny replies their real memory.
		SendQueueBytes:    opts.ClientQueueLimit,
		SendQueueMessages: int(max(opts.ClientQueueLimit/minReplyCost, 1)),
		EventBuffer:       256,
		Logger:            log, // it logs connections, once each
		Guard:             opts.Guard,
		Curve:             opts.Curve.ForEndpoint(opts.Endpoint),
		// The owner copies the frame lists it keeps (see request).
		ReleaseLists: true,
	})
	if err != nil {
		return nil, err
	}
	tick := min(opts.HeartbeatInterval/4, opts.RequestTimeout/10)
	tick = max(5*time.Millisecond, min(tick, 250*time.Millisecond))
	s := &Server{
		opts:     opts,
		log:      log,
		sock:     sock,
		tick:     tick,
		calls:    make(chan func()),
		stopped:  make(chan struct{}),
		peers:    map[*zmtp.Conn]*peer{},
		services: map[string]*service{},
		workers:  map[*worker]struct{}{},
		failures: map[string]uint64{},
	}
	s.startGathering()
	go s.run()
	go s.ticks()
	return s, nil
}

// Endpoint is where the broker listens (with the real port for tcp://...:0).
func (s *Server) Endpoint() string { return s.sock.Endpoint() }

// Stats returns a snapshot taken by the owning goroutine.
func (s *Server) Stats() Stats {
	var st Stats
	if owner.Do(s.calls, s.stopped, func() { st = s.snapshot() }) {
		return st
	}
	return s.final
}

// SetQueueLimit changes RequestQueueLimit of the running broker (zero
// means the default). Requests already queued stay queued.
func (s *Server) SetQueueLimit(n int) {
	n = Options{RequestQueueLimit: n}.WithDefaults().RequestQueueLimit
	owner.Do(s.calls, s.stopped, func() { s.opts.RequestQueueLimit = n })
}

// Close tells every worker DISCONNECT (so it re-registers with the next
// broker), stops the broker and returns its state at that moment. Waiting
// requests are dropped; their clients retry or time out.
func (s *Server) Close() Stats {
	s.closeOnce.Do(func() {
		owner.Do(s.calls, s.stopped, s.shutdown)
		s.sock.Close()
		<-s.stopped
	})
	return s.final
}

// fastEvents bounds how many waiting batches of events the owner takes in
// a row without looking at its calls (ticks, Stats, Close...).
const fastEvents = 64

// run is the owner. It waits on two channels only, events and calls:
// this select runs about once per request, and its cost grows with its
// cases (a timer's channel costs more still), so ticks come as calls
// too (see ticks).
func (s *Server) run() {
	defer close(s.stopped)
	events := s.sock.Events()
	fast := 0
	for {
		// While events are waiting, a one-way receive takes the next batch
		// for a fraction of what the full select below costs.
		if fast < fastEvents {
			select {
			case batch, ok := <-events:
				fast++
				if !s.take(batch, ok) {
					return
				}
				continue
			default:
			}
		}
		fast = 0
		select {
		case batch, ok := <-events:
			if !s.take(batch, ok) {
				return
			}
		case f := <-s.calls:
			f()
		}
	}
}

// ticks has the owner run onTick every s.tick until it stops.
func (s *Server) ticks() {
	t := time.NewTicker(s.tick)
	defer t.Stop()
	tick := func() {
		if !s.closing {
			s.now = time.Now()
			s.onTick()
		}
	}
	for {
		select {
		case <-t.C:
			if !owner.Do(s.calls, s.stopped, tick) {
				return
			}
		case <-s.stopped:
			return
		}
	}
}

// shutdown runs on the owner when Close is called: it keeps the final
// state and tells every worker DISCONNECT; events are ignored from then on.
func (s *Server) shutdown() {
	s.final = s.snapshot()
	s.releaseHeld()
	for w := range s.workers {
		w.peer.send(encodeWorkerCommand(w.version, w.env, kDisconnect, nil))
	}
	s.closing = true
}

// take handles a batch of events received (ok) from the socket, and
// returns false once the socket has closed its events.
func (s *Server) take(batch *zmtp.Batch, ok bool) bool {
	if !ok {
		s.final = s.snapshot()
		return false
	}
	if !s.closing {
		s.now = time.Now()
		s.events(batch.Events)
		if len(s.gathering) > 0 {
			s.releaseOld()
		}
	}
	batch.Release()
	return true
}

func (s *Server) snapshot() Stats {
	st := Stats{Peers: len(s.peers), Services: len(s.services), Workers: len(s.workers), Queued: s.queued, InFlight: s.inflight}
	for _, svc := range s.services {
		st.IdleWorkers += svc.nidle
	}
	return st
}

// events handles a batch's events. They are one connection's, so its
// peer is looked up once, not per message.
func (s *Server) events(evs []zmtp.Event) {
	var p *peer
	for _, ev := range evs {
		if ev.Type == zmtp.Connected {
			p = &peer{conn: ev.Conn}
			s.peers[ev.Conn] = p
			continue
		}
		if p == nil || p.conn != ev.Conn {
			if p = s.peers[ev.Conn]; p == nil {
				continue
			}
		}
		switch ev.Type {
		case zmtp.Message:
			s.handle(p, ev.Frames)
		case zmtp.Disconnected:
			s.disconnect(p, ev.Unsent)
			p = nil // forgotten: nothing more of it is handled
		}
	}
}

// minReplyCost is the memory a queued reply costs at least (frame list,
// headers, transport bookkeeping), whatever its body.
const minReplyCost = 64

func (s *Server) handle(p *peer, frames [][]byte) {
	if w := p.worker; w != nil {
		w.lastRecv = s.now // any message from a worker counts as a heartbeat
	}
	m, err := parseInbound(frames)
	if err != nil {
		switch {
		case err.replyable:
			s.logBad(p, err.reason)
			s.failures[CodeBadRequest]++
			if p.wantsFailures {
				s.toClient(p, encodeFailure(m.version, m.env, CodeBadRequest, m.service, err.reason))
			}
		case !m.client && m.version != 0 && p.worker != nil:
			// A registered worker that breaks the protocol is no longer
			// trusted with requests (RFC 7: treat that peer as invalid).
			s.logBad(p, err.reason)
			s.removeWorker(p.worker, "invalid command: "+err.reason, true)
		default:
			s.logBad(p, err.reason)
		}
		return
	}
	if m.client {
		s.request(p, &m)
	} else {
		s.workerCommand(p, &m)
	}
}

// logBad logs a malformed message: the first few of a peer at Warn, the
// rest at Debug so one noisy peer cannot flood the log.
func (s *Server) logBad(p *peer, reason string) {
	p.bad++
	level := slog.LevelWarn
	if p.bad > 5 {
		level = slog.LevelDebug
	}
	s.log.Log(context.Background(), level, "malformed message dropped", "conn", p.conn.ID(), "peer", p.conn.RemoteAddr(), "reason", reason, "count", p.bad)
}

func (s *Server) serviceFor(name []byte) *service {
	svc := s.services[string(name)]
	if svc == nil {
		svc = &service{name: bytes.Clone(name)}
		s.services[string(svc.name)] = svc
	}
	return svc
}

// gc forgets a service that has neither workers nor waiting requests.
func (s *Server) gc(svc *service) {
	if svc.workers == 0 && svc.queued == 0 && s.services[string(svc.name)] == svc {
		delete(s.services, string(svc.name))
	}
}

func (s *Server) request(p *peer, m *message) {
	if isMMI(m.service) {
		s.mmi(p, m)
		return
	}
	svc := s.serviceFor(m.service)
	size := queuedSize(m)
	if svc.nidle == 0 && s.overByteCap(p, svc, m, size) {
		s.gc(svc)
		return
	}
	if svc.nidle == 0 && svc.queued >= s.opts.RequestQueueLimit {
		s.failures[CodeQueueFull]++
		why := fmt.Sprintf("%d requests already waiting for a worker", svc.queued)
		if p.wantsFailures {
			s.toClient(p, encodeFailure(m.version, m.env, CodeQueueFull, svc.name, why))
		} else {
			s.log.Debug("request dropped", "conn", p.conn.ID(), "mdp_service", printable(svc.name), "code", CodeQueueFull, "reason", why)
		}
		return
	}
	s.nextID++
	// The frame list may be carved from a block the transport shares
	// between messages: keep copies of the (short) lists, not the list.
	r := s.newRequest()
	*r = request{id: s.nextID, client: p, version: m.version, service: svc, size: size}
	r.free = r.lists[:]
	if len(m.env) > 0 {
		r.env = append(carve(&r.free, len(m.env)), m.env...)
	}
	r.body = append(carve(&r.free, len(m.body)), m.body...)
	binary.BigEndian.PutUint64(r.addr[:], r.id)
	p.pending++
	s.updatePause(p)
	if svc.nidle > 0 {
		w := svc.idleHead
		svc.removeIdle(w)
		s.assign(w, r)
		return
	}
	s.enqueue(r, false)
}

func (s *Server) mmi(p *peer, m *message) {
	var answer string
	switch string(m.service) {
	case MMIService:
		answer = "404"
		if svc := s.services[string(m.body[0])]; svc != nil && svc.workers > 0 {
			answer = "200"
		}
	case MMIWorkers:
		n := 0
		if svc := s.services[string(m.body[0])]; svc != nil {
			n = svc.workers
		}
		answer = strconv.Itoa(n)
	case MMIFailures:
		answer = "200"
		switch string(m.body[0]) {
		case "on":
			p.wantsFailures = true
		case "off":
			p.wantsFailures = false
		default:
			answer = "400"
		}
	default:
		answer = "501"
	}
	s.toClient(p, encodeClientReply(m.version, m.env, true, m.service, [][]byte{[]byte(answer)}))
}

// enqueue makes r wait for a worker: at the back of its client's queue, or
// at the front when it comes back from a lost worker.
func (s *Server) enqueue(r *request, front bool) {
	svc, p := r.service, r.client
	q := p.queues[svc]
	if q == nil {
		q = &clientQueue{peer: p}
		if p.queues == nil {
			p.queues = map[*service]*clientQueue{}
		}
		p.queues[svc] = q
		if front {
			svc.rr.PushFront(q)
		} else {
			svc.rr.PushBack(q)
		}
	}
	if front {
		q.reqs.PushFront(r)
	} else {
		q.reqs.PushBack(r)
	}
	r.deadline = s.now.Add(s.opts.RequestTimeout)
	svc.queued++
	s.queued++
	countQueued(r, 1)
}

// dispatch gives waiting requests to idle workers: clients round robin,
// workers least recently used first.
func (s *Server) dispatch(svc *service) {
	for svc.nidle > 0 && svc.queued > 0 {
		q := svc.rr.PopFront()
		r := q.reqs.PopFront()
		svc.queued--
		s.queued--
		countQueued(r, -1)
		if q.reqs.Len() > 0 {
			svc.rr.PushBack(q)
		} else {
			delete(q.peer.queues, svc)
		}
		w := svc.idleHead
		svc.removeIdle(w)
		s.assign(w, r)
	}
}

func (s *Server) assign(w *worker, r *request) {
	w.current, w.assigned = r, s.now
	r.attempts++
	s.inflight++
	out := carve(&r.free, workerRequestLen(w.env, r.body))
	w.peer.sendRef(appendWorkerRequest(out, w.version, w.env, r.addr[:], r.body), r)
	r.sends++
	r.worker, r.wseq = w.peer, w.peer.sent
	w.lastSent = s.now
}

func (s *Server) workerCommand(p *peer, m *message) {
	w := p.worker
	switch {
	case m.kind == kDisconnect:
		if w != nil {
			s.removeWorker(w, "worker sent DISCONNECT", false)
		}
	case p.defunct:
		s.log.Debug("command from a disconnected worker ignored", "conn", p.conn.ID(), "command", m.kind)
	case w == nil && m.kind == kReady:
		if isMMI(m.service) {
			s.reject(p, m, "service name in the reserved mmi. namespace: "+printable(m.service))
			return
		}
		svc := s.serviceFor(m.service)
		w = &worker{peer: p, env: cloneList(m.env), version: m.version, service: svc, lastRecv: s.now, lastSent: s.now}
		p.worker = w
		svc.workers++
		s.workers[w] = struct{}{}
		s.log.Debug("worker ready", "conn", p.conn.ID(), "mdp_service", printable(svc.name), "version", m.version)
		svc.pushIdle(w)
		s.dispatch(svc)
	case w == nil:
		// An unknown worker (expired, or registered with a broker that
		// has restarted): DISCONNECT makes it reconnect and register.
		s.reject(p, m, m.kind.String()+" from a worker that is not registered")
	case m.version != w.version:
		s.removeWorker(w, "changed protocol version", true)
	case m.kind == kReady:
		s.removeWorker(w, "second READY", true)
	case m.kind == kHeartbeat:
	case m.kind == kReply || m.kind == kPartial:
		r := w.current
		if r == nil || !bytes.Equal(m.addr, r.addr[:]) {
			s.removeWorker(w, m.kind.String()+" for a request the worker does not hold", true)
			return
		}
		if m.kind == kPartial {
			// Only PARTIALs a client has been sent count: a 0.1 client
			// never sees them, so its request may still go to another
			// worker if this one dies.
			if !r.client.gone && r.version == V2 {
				r.partials++
				s.toClient(r.client, encodeClientReply(V2, r.env, false, r.service.name, m.body))
				if !w.streamHeld && clientQueued(r) > s.opts.ClientQueueLimit {
					// Backpressure for streams: stop reading the worker
					// until the client catches up (see onTick).
					w.streamHeld = true
					s.updatePause(w.peer)
				}
			}
			return
		}
		w.current = nil
		s.inflight--
		s.reply(r, m.body)
		w.service.pushIdle(w)
		s.dispatch(w.service)
	}
}

// reject sends DISCONNECT to a peer that is not (or no longer) a valid
// worker and ignores its further worker commands.
func (s *Server) reject(p *peer, m *message, reason string) {
	s.log.Info("worker refused", "conn", p.conn.ID(), "reason", reason)
	p.send(encodeWorkerCommand(m.version, m.env, kDisconnect, nil))
	p.defunct = true
}

// removeWorker forgets a worker; its request, if any, goes back to the
// front of the queue for another worker.
func (s *Server) removeWorker(w *worker, reason string, disconnect bool) {
	p, svc := w.peer, w.service
	p.worker = nil
	s.updatePause(p)
	if disconnect {
		p.send(encodeWorkerCommand(w.version, w.env, kDisconnect, nil))
		p.defunct = true
	}
	svc.workers--
	delete(s.workers, w)
	if w.inIdle {
		svc.removeIdle(w)
	}
	level := slog.LevelDebug
	if reason != "worker sent DISCONNECT" {
		level = slog.LevelInfo
	}
	s.log.Log(context.Background(), level, "worker removed", "conn", p.conn.ID(), "mdp_service", printable(svc.name), "reason", reason, "busy", w.current != nil)
	if r := w.current; r != nil {
		w.current = nil
		s.inflight--
		s.requeue(r, reason)
	}
	s.gc(svc)
}

func (s *Server) requeue(r *request, reason string) {
	switch {
	case r.client.gone:
	case r.partials > 0:
		s.fail(r, CodeWorkerFailed, fmt.Sprintf("worker lost (%s) after %d partial replies", reason, r.partials))
	case r.attempts >= s.opts.MaxAttempts:
		s.fail(r, CodeWorkerFailed, fmt.Sprintf("%d workers lost while holding the request (last: %s)", r.attempts, reason))
	default:
		s.enqueue(r, true)
		s.dispatch(r.service)
	}
}

func (s *Server) reply(r *request, body [][]byte) {
	p := r.client
	if p.gone {
		return
	}
	p.pending--
	s.updatePause(p)
	out := carve(&r.free, clientReplyLen(r.env, body))
	r.reply = appendClientReply(out, r.version, r.env, true, r.service.name, body)
	s.replyTo(p, r)
}

// fail ends a request that will get no reply from a worker: with a
// failure reply if its client asked for them, else silently (RFC 7 and 18
// clients time out and retry).
func (s *Server) fail(r *request, code, reason string) {
	p := r.client
	if p.gone {
		return
	}
	s.log.Debug("request failed", "conn", p.conn.ID(), "mdp_service", printable(r.service.name), "code", code, "reason", reason, "reply", p.wantsFailures)
	s.failures[code]++
	p.pending--
	s.updatePause(p)
	if p.wantsFailures {
		s.toClient(p, encodeFailure(r.version, r.env, code, r.service.name, reason))
	}
}

// updatePause stops reading a peer while it has too many requests
// outstanding as a client, or its worker streams to a client that is not
// keeping up, and resumes it when neither holds. A peer may be both.
func (s *Server) updatePause(p *peer) {
	want := p.pending >= s.opts.MaxPending || (p.worker != nil && p.worker.streamHeld)
	if want == p.paused || p.gone {
		return
	}
	p.paused = want
	if want {
		p.conn.Pause()
	} else {
		p.conn.Resume()
	}
}

func (s *Server) disconnect(p *peer, unsent []zmtp.Outgoing) {
	p.gone = true
	s.forget(p)
	delete(s.peers, p.conn)
	if w := p.worker; w != nil {
		if r := w.current; r != nil {
			for _, o := range unsent {
				if o.Ref == r { // never written: the worker never saw it
					r.attempts--
				}
			}
		}
		s.removeWorker(w, "worker disconnected", false)
	}
	for svc, q := range p.queues {
		n := q.reqs.Len()
		svc.queued -= n
		s.queued -= n
		for i := range n {
			countQueued(q.reqs.At(i), -1)
		}
		svc.rr.Filter(func(x *clientQueue) bool { return x != q })
		s.gc(svc)
	}
	p.queues = nil
}

func clientQueued(r *request) int64 {
	_, bytes := r.client.conn.Queued()
	return bytes
}

func (s *Server) onTick() {
	idleExpiry := s.opts.HeartbeatInterval * time.Duration(s.opts.HeartbeatLiveness)
	s.expired = s.expired[:0]
	for w := range s.workers {
		if w.peer.paused {
			// Its heartbeats wait unread while we do not read it; the
			// transport still reports it at once if it dies.
			w.lastRecv = s.now
		}
		if w.streamHeld {
			if r := w.current; r == nil || r.client.gone || clientQueued(r) <= s.opts.ClientQueueLimit/2 {
				w.streamHeld = false
				s.updatePause(w.peer)
			}
		}
		// A worker holding a request may be a single-threaded one that
		// cannot heartbeat until it is done; its connection's end is
		// reported at once, so only a long silence expires it.
		expiry, heard := idleExpiry, w.lastRecv
		if w.current != nil {
			expiry = max(expiry, s.opts.BusyTimeout)
			if w.assigned.After(heard) {
				heard = w.assigned
			}
		}
		if s.now.Sub(heard) > expiry {
			s.expired = append(s.expired, w)
			continue
		}
		if s.now.Sub(w.lastSent) >= s.opts.HeartbeatInterval {
			w.peer.send(encodeWorkerCommand(w.version, w.env, kHeartbeat, nil))
			w.lastSent = s.now
		}
	}
	for i, w := range s.expired {
		s.expired[i] = nil
		if w.peer.worker != w { // removed meanwhile
			continue
		}
		r := w.current
		if r == nil {
			s.removeWorker(w, "heartbeat expired", true)
			continue
		}
		// It may still be working on r: giving r to another worker
		// could run it twice.
		w.current = nil
		s.inflight--
		s.removeWorker(w, "silent while busy for the busy timeout", true)
		s.fail(r, CodeTimeout, fmt.Sprintf("worker gave no reply or heartbeat for %v", s.opts.BusyTimeout))
	}
	if s.queued > 0 {
		s.sweep()
	}
}

// sweep fails the requests that waited longer than RequestTimeout.
func (s *Server) sweep() {
	var late []*request
	for _, svc := range s.services {
		if svc.queued == 0 {
			continue
		}
		svc.rr.Filter(func(q *clientQueue) bool {
			q.reqs.Filter(func(r *request) bool {
				if s.now.Before(r.deadline) {
					return true
				}
				late = append(late, r)
				return false
			})
			if q.reqs.Len() == 0 {
				delete(q.peer.queues, svc)
				return false
			}
			return true
		})
	}
	for _, r := range late {
		svc := r.service
		svc.queued--
		s.queued--
		countQueued(r, -1)
		why := fmt.Sprintf("no worker took the request within %v", s.opts.RequestTimeout)
		if svc.workers == 0 {
			why = fmt.Sprintf("no worker for service %s within %v", printable(svc.name), s.opts.RequestTimeout)
		}
		s.fail(r, CodeTimeout, why)
		s.gc(svc)
	}
}

// cloneList copies a list of frames (not the frames themselves).
func cloneList(f [][]byte) [][]byte {
	if len(f) == 0 {
		return nil
	}
	return append(make([][]byte, 0, len(f)), f...)
}

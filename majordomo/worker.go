package majordomo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zbroker/zbroker/zmtp"
)

// Handler serves one request and returns the reply body. With MDP/0.2 it
// may first stream PARTIAL replies with req.Partial. ctx is cancelled if
// the broker is lost meanwhile (the broker then gives the request to
// another worker, and this reply is discarded).
type Handler func(ctx context.Context, req *Request) [][]byte

// Request is a request given to a Handler.
type Request struct {
	Body    [][]byte
	version Version
	conn    *zmtp.Conn
	addr    []byte
	sent    *atomic.Int64
	// list holds the copy of a one-frame body's list, so that a request
	// costs the worker one small allocation. (The copy, rather than the
	// transport's list, keeps a handler that keeps Body from keeping the
	// transport's block of lists, and other messages' frames, alive.)
	list [1][]byte
}

// ErrNoPartials is returned by Request.Partial on an MDP/0.1 worker.
var ErrNoPartials = errors.New("majordomo: PARTIAL replies need MDP/0.2")

// Partial sends a PARTIAL reply (MDP/0.2 only). Any number may precede
// the final reply the Handler returns.
func (r *Request) Partial(body ...[]byte) error {
	if r.version != V2 {
		return ErrNoPartials
	}
	r.sent.Store(time.Now().UnixNano())
	return r.conn.Send(encodeWorkerReply(V2, false, r.addr, fixBody(body)))
}

// WorkerOptions configure a Worker. Zero fields take their defaults.
type WorkerOptions struct {
	// Version of MDP to speak: V1 (default) or V2.
	Version Version
	// HeartbeatInterval and HeartbeatLiveness must match the broker's:
	// the worker heartbeats every interval (also while a handler runs)
	// and reconnects after liveness intervals without hearing from the
	// broker. Defaults 2500 ms and 3.
	HeartbeatInterval time.Duration
	HeartbeatLiveness int
	// ReconnectMin and ReconnectMax bound the exponential backoff between
	// connection attempts. Defaults 100 ms and 5 s.
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	Logger       *slog.Logger
	// BrokerUID is the uid the broker must run as on ipc (root is always
	// trusted); default our own. Another uid is refused with a
	// *zmtp.UntrustedBrokerError: it may be a squatter on the name.
	BrokerUID int
	// Curve, for a tcp endpoint, connects with CURVE (docs/curve.md):
	// the broker's public key in ServerKey and our key pair. It is not
	// used on ipc, where the broker speaks NULL.
	Curve *zmtp.CurveOptions
}

// Worker serves one service for a broker: it registers with READY, serves
// requests one at a time, heartbeats, and reconnects with backoff when the
// broker is lost or tells it to DISCONNECT.
type Worker struct {
	endpoint string
	service  string
	handler  Handler
	opts     WorkerOptions
	log      *slog.Logger
}

// NewWorker returns a worker for service; Run starts it.
func NewWorker(endpoint, service string, h Handler, opts WorkerOptions) (*Worker, error) {
	if opts.Version == 0 {
		opts.Version = V1
	}
	if !opts.Version.valid() {
		return nil, fmt.Errorf("majordomo: unknown protocol version %d", int(opts.Version))
	}
	if service == "" || isMMI([]byte(service)) {
		return nil, fmt.Errorf("majordomo: invalid worker service name %q", service)
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 2500 * time.Millisecond
	}
	if opts.HeartbeatLiveness <= 0 {
		opts.HeartbeatLiveness = 3
	}
	if opts.ReconnectMin <= 0 {
		opts.ReconnectMin = 100 * time.Millisecond
	}
	if opts.ReconnectMax < opts.ReconnectMin {
		opts.ReconnectMax = max(opts.ReconnectMin, 5*time.Second)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Worker{endpoint: endpoint, service: service, handler: h, opts: opts,
		log: opts.Logger.With("mdp", "worker", "service", service)}, nil
}

var (
	errBrokerDisconnect = errors.New("broker sent DISCONNECT")
	errBrokerSilent     = errors.New("broker silent for the heartbeat liveness")
)

// Run serves until ctx is cancelled, then sends DISCONNECT and returns nil.
func (w *Worker) Run(ctx context.Context) error {
	backoff := w.opts.ReconnectMin
	for {
		start := time.Now()
		err := w.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > w.opts.HeartbeatInterval*time.Duration(w.opts.HeartbeatLiveness) {
			backoff = w.opts.ReconnectMin // the session was healthy
		}
		delay := backoff/2 + rand.N(backoff/2+1)
		w.log.Info("connection to broker ended, reconnecting", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		backoff = min(2*backoff, w.opts.ReconnectMax)
	}
}

func (w *Worker) session(ctx context.Context) error {
	hb := w.opts.HeartbeatInterval
	silence := hb * time.Duration(w.opts.HeartbeatLiveness)
	dctx, cancel := context.WithTimeout(ctx, silence)
	// Each request's list is copied (Request.list) before the next Recv.
	conn, err := zmtp.Dial(dctx, w.endpoint, zmtp.Options{SocketType: "DEALER", Logger: w.opts.Logger, BrokerUID: w.opts.BrokerUID, Curve: w.opts.Curve.ForEndpoint(w.endpoint), ReleaseLists: true})
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close()
	v := w.opts.Version
	var lastSent, lastRecv atomic.Int64
	now := time.Now().UnixNano()
	lastSent.Store(now)
	lastRecv.Store(now)
	if err := conn.Send(workerHello(v, w.service)); err != nil {
		return err
	}

	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	var endErr error
	var endOnce sync.Once
	end := func(err error) {
		endOnce.Do(func() {
			endErr = err
			scancel()
		})
	}
	var busy atomic.Bool
	hbDone := make(chan struct{})
	defer func() { <-hbDone }()
	go func() { // heartbeats (also while the handler runs), and the end of the session
		defer close(hbDone)
		t := time.NewTicker(max(hb/4, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				if ctx.Err() != nil {
					conn.Send(workerSignal(v, kDisconnect))
				}
				conn.Close() // flushes, and ends the Recv below
				return
			case <-t.C:
				now := time.Now()
				// While a handler runs nobody reads, so the broker's
				// heartbeats wait in the socket: judge silence when idle.
				if !busy.Load() && now.Sub(time.Unix(0, lastRecv.Load())) > silence {
					end(errBrokerSilent)
					continue
				}
				if now.Sub(time.Unix(0, lastSent.Load())) >= hb {
					lastSent.Store(now.UnixNano())
					if err := conn.Send(workerSignal(v, kHeartbeat)); err != nil {
						end(err) // connection lost: cancels a running handler
					}
				}
			}
		}
	}()
	// Requests are served on this goroutine, as they are read: one at a
	// time, as MDP requires, with no hand-off between goroutines.
	// The replies' frame lists. The broker sends the next request once it
	// has the last reply, so the last reply's list is usually written by
	// then and reused: when nothing is queued on the connection (Queued
	// counts every Send, the heartbeats' too), it has been written.
	var lists listBlock
	var last [][]byte
	for {
		f, err := conn.Recv()
		if err != nil {
			end(err)
			break
		}
		m, perr := parseForWorker(v, f)
		if perr != nil || m.kind != kWorkerRequest {
			// A request counts as heard from the broker when its handler
			// ends (below): one clock read per request, not two.
			lastRecv.Store(time.Now().UnixNano())
		}
		if perr != nil {
			w.log.Warn("malformed message from broker dropped", "reason", perr.reason)
			continue
		}
		if m.kind == kDisconnect {
			end(errBrokerDisconnect)
			break
		}
		if m.kind != kWorkerRequest {
			continue
		}
		busy.Store(true)
		req := &Request{version: v, conn: conn, addr: m.addr, sent: &lastSent}
		free := req.list[:]
		req.Body = append(carve(&free, len(m.body)), m.body...)
		body := fixBody(w.handler(sctx, req))
		now := time.Now().UnixNano()
		lastRecv.Store(now)
		busy.Store(false)
		if sctx.Err() != nil {
			break // broker lost: it has given the request to another worker
		}
		lastSent.Store(now)
		out := last[:0]
		if n := workerReplyLen(body); cap(out) < n || !allWritten(conn) {
			out = lists.take(n)
		}
		last = appendWorkerReply(out, v, true, m.addr, body)
		conn.Send(last)
	}
	scancel()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return endErr
}

// allWritten reports whether conn's writer holds nothing more to write.
func allWritten(conn *zmtp.Conn) bool {
	queued, _ := conn.Queued()
	return queued == 0
}

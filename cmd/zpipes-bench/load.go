package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zbroker/zbroker/zmtp"
)

// The load generator. Each pipe has N writer connections and one reader
// connection, each with its own goroutine.
//
// Chunk layout: bytes 0..8 hold the write time (big-endian ns since the
// run's base, from the monotonic clock; chunks under 8 bytes carry no time
// and give no latency), bytes 8..16 hold writer<<48 | sequence (chunks of
// 16 bytes and more), the rest is zero. Filler chunks (see below) are all
// 0xFF: a real chunk starts with 0x00 (a time is below 2^63), so the two
// never mix up.
//
// Flow: a writer keeps up to Window WRITEs unacknowledged; the reader keeps
// up to Window READs outstanding, posted ahead so a chunk finds a READ
// waiting. A per-pipe gate lets at most Window×Writers chunks be written
// and not yet read, so no broker queue grows without bound (the bare relay
// has no limits and would otherwise queue all the writers' surplus) and
// latency stays a property of the broker, not of an ever longer queue.
//
// End: at the deadline the coordinator freezes every connection's sends
// and compares the READs posted (R) with the WRITEs sent (S). If R < S it
// posts S-R more READs; if R > S it writes R-S fillers so that no READ is
// left hanging. Fillers go through a connection of their own: the reader's
// may be paused by the broker for having too many READs waiting (zpipes'
// PendingLimit), and the writers' belong to their goroutines. Writers
// drain their OKs and the reader drains its replies; then every count is
// cross-checked: acknowledged = sent for each writer, chunks read = S, and
// per writer the sequence numbers arrived strictly increasing and complete.
//
// A fatal error (a lost connection, an ERROR reply, a broker that stops
// answering) closes every connection and gate, so all goroutines end.

type loadConfig struct {
	Endpoint string
	Size     int
	Writers  int
	Pipes    int
	Window   int // commands in flight per connection
	Warmup   time.Duration
	Duration time.Duration
	Prefix   string             // pipe names are Prefix-0, Prefix-1, ...
	Curve    *zmtp.CurveOptions // dial tcp endpoints with CURVE
	// AckEvery > 0 makes the readers acknowledging ones (OPEN / pipe /
	// ACK) that send ACK after every AckEvery chunks (fillers included).
	AckEvery int
	// WindowStart and WindowEnd are called when the measured window
	// opens and closes (to sample the broker's CPU time).
	WindowStart, WindowEnd func()
	// Generator, if set, is told the load generator's process when it
	// is not this one (--client libzmq), before WindowStart.
	Generator func(pid int)
	// Progress is called about every 250ms with the chunk rate since the
	// last call.
	Progress func(chunksPerSec float64)
}

type loadResult struct {
	Chunks  int64   // read in the measured window
	Seconds float64 // length of the measured window
	Latency hist    // write-to-read latency of those chunks
	Written int64   // real chunks over the whole run (warmup, window, drain)
	Read    int64
	Fillers int64
	Errors  []string
}

var (
	cmdOpen  = []byte("OPEN")
	cmdClose = []byte("CLOSE")
	cmdRead  = []byte("READ")
	cmdWrite = []byte("WRITE")
	cmdAck   = []byte("ACK")
)

const fillerByte = 0xFF

// errorLog collects a run's errors; the first fatal one aborts the run.
type errorLog struct {
	mu     sync.Mutex
	list   []string
	more   int
	abort  chan struct{}
	once   sync.Once
	onFail func()
}

func (e *errorLog) add(fatal bool, format string, args ...any) {
	e.mu.Lock()
	if len(e.list) < 10 {
		e.list = append(e.list, fmt.Sprintf(format, args...))
	} else {
		e.more++
	}
	e.mu.Unlock()
	if fatal {
		e.once.Do(func() {
			close(e.abort)
			e.onFail()
		})
	}
}

func (e *errorLog) aborted() bool {
	select {
	case <-e.abort:
		return true
	default:
		return false
	}
}

// gate bounds the chunks written and not yet read on one pipe.
type gate struct {
	avail   atomic.Int64
	waiters atomic.Int32
	mu      sync.Mutex
	cond    sync.Cond
	stop    bool
}

func newGate(n int) *gate {
	g := &gate{}
	g.avail.Store(int64(n))
	g.cond.L = &g.mu
	return g
}

// acquire takes a token, waiting for one; false once the gate is stopped.
func (g *gate) acquire() bool {
	for {
		if g.avail.Add(-1) >= 0 {
			return true
		}
		g.avail.Add(1)
		g.mu.Lock()
		g.waiters.Add(1)
		for g.avail.Load() <= 0 && !g.stop {
			g.cond.Wait()
		}
		g.waiters.Add(-1)
		stopped := g.stop
		g.mu.Unlock()
		if stopped {
			return false
		}
	}
}

func (g *gate) release() {
	g.avail.Add(1)
	if g.waiters.Load() > 0 {
		g.mu.Lock()
		g.cond.Broadcast()
		g.mu.Unlock()
	}
}

func (g *gate) close() {
	g.mu.Lock()
	g.stop = true
	g.cond.Broadcast()
	g.mu.Unlock()
}

type pipeLoad struct {
	name    []byte
	size    int
	gate    *gate
	writers []*writer
	reader  *reader
}

type writer struct {
	id   int
	conn *zmtp.Conn
	p    *pipeLoad

	mu      sync.Mutex
	stopped bool
	sent    int64 // under mu; final once stopped
	acked   int64 // owned by the writer goroutine; read after it ends
}

type reader struct {
	conn *zmtp.Conn
	p    *pipeLoad

	mu        sync.Mutex
	stopped   bool
	readsSent int64 // under mu

	issued     atomic.Int64 // READs sent on conn
	drainReady chan struct{}
	expChunks  int64 // set before drainReady is closed

	progress atomic.Int64 // real chunks read so far

	// owned by the reader goroutine, read after it ends
	real, fillers int64
	inWindow      int64
	first, last   int64 // times of the first and last real chunk
	lat           hist
	lastSeq       []int64
	perWriter     []int64
}

func dialAll(ctx context.Context, cfg *loadConfig, n int) ([]*zmtp.Conn, error) {
	opts := zmtp.Options{
		SocketType: "DEALER",
		// The client's own send queue must never make it stop reading
		// replies: the window bounds it already.
		SendQueueMessages: max(1000, cfg.Window*(cfg.Writers+2)+16),
		SendQueueBytes:    1 << 40,
		EventBuffer:       min(max(cfg.Window, 64), 1024),
		Curve:             cfg.Curve.ForEndpoint(cfg.Endpoint),
	}
	conns := make([]*zmtp.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := zmtp.Dial(ctx, cfg.Endpoint, opts)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, fmt.Errorf("dial %s: %w", cfg.Endpoint, err)
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// runLoad runs one case against the broker at cfg.Endpoint.
func runLoad(ctx context.Context, cfg loadConfig) (*loadResult, error) {
	if cfg.Size < 1 || cfg.Writers < 1 || cfg.Pipes < 1 || cfg.Window < 1 {
		return nil, errors.New("size, writers, pipes and window must be at least 1")
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conns, err := dialAll(dctx, &cfg, cfg.Pipes*(cfg.Writers+1)+1)
	cancel()
	if err != nil {
		return nil, err
	}
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	defer closeAll()
	pipes := make([]*pipeLoad, cfg.Pipes)
	errs := &errorLog{abort: make(chan struct{}), onFail: func() {
		closeAll()
		for _, p := range pipes {
			p.gate.close()
		}
	}}

	aux := conns[len(conns)-1] // writes the fillers
	k := 0
	for i := range pipes {
		p := &pipeLoad{name: fmt.Appendf(nil, "%s-%d", cfg.Prefix, i), size: cfg.Size, gate: newGate(cfg.Window * cfg.Writers)}
		for j := 0; j < cfg.Writers; j++ {
			p.writers = append(p.writers, &writer{id: j, conn: conns[k], p: p})
			k++
		}
		p.reader = &reader{conn: conns[k], p: p, drainReady: make(chan struct{}),
			lastSeq: make([]int64, cfg.Writers), perWriter: make([]int64, cfg.Writers)}
		for j := range p.reader.lastSeq {
			p.reader.lastSeq[j] = -1
		}
		k++
		pipes[i] = p
	}
	// OPEN everywhere first, so no pipe starts before all are ready. A
	// broker that does not answer within 10s gets its connections closed.
	openTimeout := time.AfterFunc(10*time.Second, closeAll)
	for _, p := range pipes {
		for _, w := range p.writers {
			w.conn.Send([][]byte{cmdOpen, p.name})
		}
		if cfg.AckEvery > 0 {
			p.reader.conn.Send([][]byte{cmdOpen, p.name, cmdAck})
		} else {
			p.reader.conn.Send([][]byte{cmdOpen, p.name})
		}
		aux.Send([][]byte{cmdOpen, p.name})
	}
	for _, c := range conns[:len(conns)-1] {
		if err := expectOK(c); err != nil {
			return nil, fmt.Errorf("OPEN: %w", err)
		}
	}
	for range pipes {
		if err := expectOK(aux); err != nil {
			return nil, fmt.Errorf("OPEN: %w", err)
		}
	}
	if !openTimeout.Stop() {
		return nil, errors.New("OPEN: no answer within 10s")
	}

	base := time.Now()
	now := func() int64 { return int64(time.Since(base)) }
	winStart, winEnd := int64(cfg.Warmup), int64(cfg.Warmup+cfg.Duration)

	var wg sync.WaitGroup
	for _, p := range pipes {
		for _, w := range p.writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.run(&cfg, now, errs)
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.reader.run(&cfg, now, winStart, winEnd, errs)
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()

	// The clock: progress, window start and end, then the drain.
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	startTimer := time.NewTimer(time.Duration(winStart))
	endTimer := time.NewTimer(time.Duration(winEnd))
	defer startTimer.Stop()
	defer endTimer.Stop()
	var watchdog <-chan time.Time
	lastN, lastT := int64(0), time.Now()
	for {
		select {
		case <-tick.C:
			if cfg.Progress != nil {
				var n int64
				for _, p := range pipes {
					n += p.reader.progress.Load()
				}
				t := time.Now()
				cfg.Progress(float64(n-lastN) / t.Sub(lastT).Seconds())
				lastN, lastT = n, t
			}
			continue
		case <-startTimer.C:
			if cfg.WindowStart != nil {
				cfg.WindowStart()
			}
			continue
		case <-endTimer.C:
			if cfg.WindowEnd != nil {
				cfg.WindowEnd()
			}
			// Readers cannot end before their pipe is stopped, so
			// the group is not done yet.
			wg.Add(1)
			var fillers int64
			for _, p := range pipes {
				fillers += p.stop(aux)
			}
			go func() {
				defer wg.Done()
				for i := int64(0); i < fillers; i++ {
					if err := expectOK(aux); err != nil {
						if !errs.aborted() {
							errs.add(true, "filler WRITE: %v", err)
						}
						return
					}
				}
			}()
			// Draining takes at most a window per connection; a broker
			// that does not answer by then is broken.
			watchdog = time.After(30 * time.Second)
			continue
		case <-watchdog:
			errs.add(true, "drain did not finish within 30s after the deadline (lost replies?)")
			<-done
		case <-ctx.Done():
			errs.add(true, "interrupted: %v", ctx.Err())
			<-done
		case <-done:
		}
		break
	}

	res := &loadResult{Seconds: cfg.Duration.Seconds()}
	for _, p := range pipes {
		r := p.reader
		res.Chunks += r.inWindow
		res.Latency.merge(&r.lat)
		res.Read += r.real
		res.Fillers += r.fillers
		var sent int64
		for _, w := range p.writers {
			sent += w.sent
			if !errs.aborted() && w.acked != w.sent {
				errs.add(false, "pipe %s writer %d: %d WRITEs sent but %d acknowledged", p.name, w.id, w.sent, w.acked)
			}
			if !errs.aborted() && cfg.Size >= 16 && r.perWriter[w.id] != w.sent {
				errs.add(false, "pipe %s writer %d: wrote %d chunks, reader got %d of them", p.name, w.id, w.sent, r.perWriter[w.id])
			}
		}
		res.Written += sent
		if !errs.aborted() && r.real != sent {
			errs.add(false, "pipe %s: %d chunks written, %d read", p.name, sent, r.real)
		}
	}
	if !errs.aborted() && res.Chunks == 0 {
		r := pipes[0].reader
		errs.add(false, "no chunk was read in the measured window %v..%v (pipe %s: %d chunks read between %v and %v)",
			time.Duration(winStart), time.Duration(winEnd), r.p.name, r.real, time.Duration(r.first), time.Duration(r.last))
	}
	errs.mu.Lock()
	res.Errors = errs.list
	if errs.more > 0 {
		res.Errors = append(res.Errors, fmt.Sprintf("... and %d more errors", errs.more))
	}
	errs.mu.Unlock()
	return res, nil
}

// stop freezes the pipe's sends at the deadline and issues what the
// reader needs so that every READ is answered and every chunk read. It
// returns the number of fillers written on aux.
func (p *pipeLoad) stop(aux *zmtp.Conn) int64 {
	var sent int64
	for _, w := range p.writers {
		w.mu.Lock()
		w.stopped = true
		sent += w.sent
		w.mu.Unlock()
	}
	p.gate.close()
	r := p.reader
	r.mu.Lock()
	r.stopped = true
	reads := r.readsSent
	r.mu.Unlock()
	var more, fillers int64
	if reads < sent {
		more = sent - reads
	} else {
		fillers = reads - sent
	}
	r.expChunks = max(reads, sent)
	r.issued.Add(more)
	if more > 0 {
		read := [][]byte{cmdRead, p.name}
		for i := int64(0); i < more; i++ {
			r.conn.Send(read)
		}
	}
	if fillers > 0 {
		filler := make([]byte, p.size)
		for i := range filler {
			filler[i] = fillerByte
		}
		write := [][]byte{cmdWrite, p.name, filler}
		for i := int64(0); i < fillers; i++ {
			aux.Send(write)
		}
	}
	close(r.drainReady)
	return fillers
}

func expectOK(c *zmtp.Conn) error {
	f, err := c.Recv()
	if err != nil {
		return err
	}
	if len(f) != 1 || string(f[0]) != "OK" {
		return fmt.Errorf("want OK, got %s", describe(f))
	}
	return nil
}

func describe(f [][]byte) string {
	if len(f) == 2 && string(f[0]) == "ERROR" {
		return fmt.Sprintf("ERROR %q", f[1])
	}
	s := fmt.Sprintf("%d frames [", len(f))
	for i, x := range f {
		if i > 0 {
			s += " "
		}
		if len(x) > 16 {
			s += fmt.Sprintf("%q...(%d B)", x[:16], len(x))
		} else {
			s += fmt.Sprintf("%q", x)
		}
	}
	return s + "]"
}

func (w *writer) run(cfg *loadConfig, now func() int64, errs *errorLog) {
	// Send keeps a message's frames until they are written; one is surely
	// written once its OK is back, so Window+1 buffers in turn are never
	// patched while still in use.
	msgs := make([][][]byte, cfg.Window+1)
	for i := range msgs {
		msgs[i] = [][]byte{cmdWrite, w.p.name, make([]byte, cfg.Size)}
	}
	slot, inflight, running := 0, 0, true
	for {
		for running && inflight < cfg.Window {
			if !w.p.gate.acquire() || !w.send(msgs[slot], now) {
				running = false
				break
			}
			if slot++; slot == len(msgs) {
				slot = 0
			}
			inflight++
		}
		if inflight == 0 {
			break
		}
		f, err := w.conn.Recv()
		if err != nil {
			if !errs.aborted() {
				errs.add(true, "pipe %s writer %d: connection lost: %v", w.p.name, w.id, err)
			}
			return
		}
		if len(f) != 1 || string(f[0]) != "OK" {
			errs.add(true, "pipe %s writer %d: WRITE answered with %s", w.p.name, w.id, describe(f))
			return
		}
		w.acked++
		inflight--
	}
	w.conn.Send([][]byte{cmdClose, w.p.name})
	if err := expectOK(w.conn); err != nil && !errs.aborted() {
		errs.add(true, "pipe %s writer %d: CLOSE: %v", w.p.name, w.id, err)
	}
}

// send stamps and sends one WRITE unless the pipe has been stopped.
func (w *writer) send(msg [][]byte, now func() int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return false
	}
	buf := msg[2]
	if len(buf) >= 16 {
		binary.BigEndian.PutUint64(buf[8:16], uint64(w.id)<<48|uint64(w.sent))
	}
	if len(buf) >= 8 {
		binary.BigEndian.PutUint64(buf[0:8], uint64(now()))
	}
	w.sent++
	w.conn.Send(msg)
	return true
}

func (r *reader) post(msg [][]byte) {
	r.mu.Lock()
	if !r.stopped {
		r.readsSent++
		r.issued.Add(1)
		r.conn.Send(msg)
	}
	r.mu.Unlock()
}

func (r *reader) run(cfg *loadConfig, now func() int64, winStart, winEnd int64, errs *errorLog) {
	name := r.p.name
	read := [][]byte{cmdRead, name}
	for i := 0; i < cfg.Window; i++ {
		r.post(read)
	}
	var got int64
	drained := false
	// The ACKs' OKs come among the chunks; the chunks are never "OK"
	// (they are cfg.Size bytes, stamped).
	unacked, acksOut := 0, 0
	ack := [][]byte{cmdAck, name, strconv.AppendInt(nil, int64(cfg.AckEvery), 10)}
	for {
		if drained && got == r.expChunks {
			break
		}
		if r.issued.Load() == got {
			if drained {
				errs.add(true, "pipe %s reader: got %d chunks, expected %d", name, got, r.expChunks)
				return
			}
			select {
			case <-r.drainReady:
				drained = true
			case <-errs.abort:
				return
			}
			continue
		}
		f, err := r.conn.Recv()
		if err != nil {
			if !errs.aborted() {
				errs.add(true, "pipe %s reader: connection lost: %v", name, err)
			}
			return
		}
		if acksOut > 0 && len(f) == 1 && string(f[0]) == "OK" && cfg.Size != 2 {
			acksOut--
			continue
		}
		got++
		if cfg.AckEvery > 0 {
			if unacked++; unacked == cfg.AckEvery {
				r.conn.Send(ack)
				unacked = 0
				acksOut++
			}
		}
		t := now()
		if len(f) != 1 {
			errs.add(true, "pipe %s reader: READ answered with %s", name, describe(f))
			return
		}
		c := f[0]
		if len(c) != cfg.Size {
			errs.add(false, "pipe %s reader: chunk of %d bytes, want %d", name, len(c), cfg.Size)
		} else if c[0] == fillerByte {
			r.fillers++
			continue
		}
		if r.real == 0 {
			r.first = t
		}
		r.real++
		r.last = t
		if len(c) >= 16 {
			word := binary.BigEndian.Uint64(c[8:16])
			id, seq := int(word>>48), int64(word&(1<<48-1))
			switch {
			case id >= len(r.lastSeq):
				errs.add(false, "pipe %s reader: chunk from unknown writer %d", name, id)
			case seq <= r.lastSeq[id]:
				errs.add(false, "pipe %s reader: writer %d sequence went from %d to %d (reordered or duplicated)", name, id, r.lastSeq[id], seq)
			default:
				r.lastSeq[id] = seq
				r.perWriter[id]++
			}
		}
		if t >= winStart && t < winEnd {
			r.inWindow++
			if len(c) >= 8 {
				r.lat.add(t - int64(binary.BigEndian.Uint64(c[0:8])))
			}
		}
		r.progress.Add(1)
		r.p.gate.release()
		r.post(read)
	}
	if unacked > 0 { // what the pipe would get back on CLOSE
		r.conn.Send([][]byte{cmdAck, name, strconv.AppendInt(nil, int64(unacked), 10)})
		acksOut++
	}
	r.conn.Send([][]byte{cmdClose, name})
	for range acksOut + 1 {
		if err := expectOK(r.conn); err != nil && !errs.aborted() {
			errs.add(true, "pipe %s reader: ACK or CLOSE: %v", name, err)
			return
		}
	}
}

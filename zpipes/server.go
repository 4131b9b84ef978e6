package zpipes

import (
	"log/slog"
	"time"

	"github.com/zbroker/zbroker/internal/deque"

	"github.com/zbroker/zbroker/internal/owner"
	"github.com/zbroker/zbroker/zmtp"
)

// Options configure a zpipes broker. Zero fields take their defaults.
type Options struct {
	// Name of the broker; it serves Endpoint(Name). Default "default".
	Name string
	// Endpoint overrides the endpoint derived from Name.
	Endpoint string
	// PipeLimit and TotalLimit bound the bytes queued in one pipe and in
	// all pipes (each chunk is charged 64 bytes beyond its payload). Over
	// a limit, WRITEs are held and their OK withheld until readers drain
	// the pipe. Defaults 64 MiB and 1 GiB.
	PipeLimit  int64
	TotalLimit int64
	// MaxChunkSize bounds one chunk; a client sending a larger message is
	// disconnected. Default 256 MiB.
	MaxChunkSize int64
	// PendingLimit bounds what one connection's replies not yet sent
	// hold (slotCost per reply owed, plus its envelope and, for a reply
	// waiting behind an earlier one, its chunk) before the broker stops
	// reading its commands. Bytes, not a count of replies: a client that
	// sends thousands of READs before the WRITEs that feed them, on the
	// same connection, must not deadlock itself. Default 64 MiB.
	PendingLimit int64
	// MaxPipesPerConnection bounds the pipes one connection has open; an
	// OPEN beyond it gets ERROR "too many pipes open on this connection".
	// Default 1024.
	MaxPipesPerConnection int
	// MaxUnacked and MaxUnackedBytes bound what one acknowledging reader
	// (OPEN / pipe / ACK) holds unacknowledged, in chunks and payload
	// bytes: past either, its READs wait as on an empty pipe until it
	// acknowledges. Defaults 10,000 and 64 MiB.
	MaxUnacked      int
	MaxUnackedBytes int64
	// Store keeps the queued chunks; nil: NewMemoryStore(). The server
	// serves the pipes it recovered and closes it when it stops.
	Store  Store
	Logger *slog.Logger
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
	if o.PipeLimit <= 0 {
		o.PipeLimit = 64 << 20
	}
	if o.TotalLimit <= 0 {
		o.TotalLimit = 1 << 30
	}
	if o.MaxChunkSize <= 0 {
		o.MaxChunkSize = 256 << 20
	}
	if o.PendingLimit <= 0 {
		o.PendingLimit = 64 << 20
	}
	if o.MaxPipesPerConnection <= 0 {
		o.MaxPipesPerConnection = 1024
	}
	if o.MaxUnacked <= 0 {
		o.MaxUnacked = 10_000
	}
	if o.MaxUnackedBytes <= 0 {
		o.MaxUnackedBytes = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Stats is a snapshot of the broker's state.
type Stats struct {
	Clients     int   // live connections
	Pipes       int   // pipes held open or holding chunks
	Chunks      int   // chunks queued in all pipes
	QueuedBytes int64 // their cost against TotalLimit, unacknowledged ones included
	Stalled     int   // WRITEs held back by the memory limits
	Unacked     int   // chunks held by acknowledging readers, not yet acknowledged
}

// Server is a running zpipes broker. All broker state is owned by one
// goroutine fed by the transport's events, so there are no locks.
type Server struct {
	opts    Options
	log     *slog.Logger
	sock    *zmtp.Socket
	store   Store
	queries chan chan Stats
	calls   chan func() // run by the owner: see SetLimits and stats.go
	stopped chan struct{}
	final   Stats
	counts  counters

	clients map[*zmtp.Conn]*client
	pipes   map[string]*pipe
	total   int64
	// stalledPipes holds pipes with WRITEs held back; the total limit can
	// hold back writes to one pipe until another pipe drains.
	stalledPipes map[*pipe]struct{}
	// refill lists pipes that got chunks back during the current event.
	refill []*pipe
	pass   int // admission pass counter, see admitPipe
	// replyBlock is the unused rest of the block chunkReply carves from.
	replyBlock [][]byte
	// unconfirmed holds the clients with chunks sent but not yet known
	// to be written to their sockets; confirm checks them after every
	// event, and confirmTimer while no events come.
	unconfirmed  map[*client]struct{}
	confirmTimer *time.Timer
	timerArmed   bool
	scratch      []Chunk
}

// confirmEvery is how often chunks sent to readers are checked for having
// been written when no event comes: the delay before a durable store
// records their consumption.
const confirmEvery = 2 * time.Millisecond

// client is one connection's state.
type client struct {
	conn   *zmtp.Conn
	fromRE bool // a REQ peer: commands carry an envelope
	open   map[string]*pipe
	// acking holds the pipes opened with ACK (nil if none).
	acking map[*pipe]struct{}
	// slots are this connection's replies not yet sent, in command
	// order: replies on a connection must keep the order of its
	// commands, and a READ may wait while later commands complete.
	slots  []*slot
	owed   int64 // what the slots hold, see PendingLimit
	held   int64 // bytes (+64 each) of this client's WRITEs held back
	paused bool
	gone   bool
	// lost: a Send failed; the socket is gone and its Disconnected
	// event on its way, but commands read before may still come.
	lost bool
	// capLogged: a refusal over MaxPipesPerConnection was logged.
	capLogged bool
	// sent counts messages accepted by the connection's Send; out lists
	// the chunks among them not yet known to be written to the socket
	// (see zmtp.Conn.Written), in order.
	sent uint64
	out  deque.Deque[sentChunk]
	// storing holds the slots of WRITEs whose chunks the store has not
	// stored yet, in order; the client is their Appends' token.
	storing deque.Deque[*slot]
}

// sentChunk is a chunk sent to a reader as its message number seq.
type sentChunk struct {
	seq   uint64
	chunk Chunk
	delivery
}

// delivery says where the chunk of a READ reply comes from: its pipe, and
// the acknowledging reader's state that holds it (nil for a plain
// reader). Zero for other replies.
type delivery struct {
	p   *pipe
	ack *ackState
}

// heldReadAhead is how much of its WRITEs held back by the limits a
// connection may have before the broker stops reading it. Reading a little
// past a held WRITE lets a connection that also reads the pipe send the
// READs that will drain it; beyond this its backlog stays in its socket.
const heldReadAhead = 1 << 20

// slotCost is what a reply owed counts against PendingLimit beyond its
// frames: the slot, its place in the lists that refer to it.
const slotCost = 256

// slot is a reply owed to a client.
type slot struct {
	env      [][]byte
	reply    [][]byte
	cost     int64 // counted in its client's owed
	ready    bool
	from     delivery // a READ reply: where its chunk was taken from
	id       uint64   // and the chunk's store ID
	heldBack *pipe    // an unanswered WRITE held by the memory limits
}

// owe appends a slot for a reply to c's. The envelope is copied because
// the transport's frame lists share blocks that must not be kept alive.
func (s *Server) owe(c *client, env [][]byte) *slot {
	if len(env) > 0 {
		env = append([][]byte(nil), env...)
	}
	sl := &slot{env: env, cost: slotCost + framesSize(env)}
	c.slots = append(c.slots, sl)
	c.owed += sl.cost
	return sl
}

func framesSize(frames [][]byte) int64 {
	var n int64
	for _, f := range frames {
		n += int64(len(f))
	}
	return n
}

var (
	okReply  = [][]byte{[]byte(ReplyOK)}
	errFrame = []byte(ReplyError)
)

// Start binds the broker's endpoint and starts serving. It fails with an
// error wrapping zmtp.ErrAddrInUse if a broker of that name runs already.
func Start(opts Options) (*Server, error) {
	opts = opts.WithDefaults()
	if opts.Store == nil {
		opts.Store = NewMemoryStore()
	}
	recovered := opts.Store.Recovered()
	log := opts.Logger.With("service", "zpipes")
	sock, err := zmtp.Listen(opts.Endpoint, zmtp.Options{
		SocketType:     "ROUTER",
		MaxMessageSize: opts.MaxChunkSize + 2*MaxPipeName + 1024,
		// A client may pipeline thousands of commands before reading a
		// reply; its replies are bounded by bytes (the transport's
		// SendQueueBytes), not by libzmq's customary 1,000 messages.
		SendQueueMessages: 1 << 20,
		Logger:            log, // it logs connections, once each
		Guard:             opts.Guard,
		Curve:             opts.Curve.ForEndpoint(opts.Endpoint),
	})
	if err != nil {
		opts.Store.Close()
		return nil, err
	}
	s := &Server{
		opts:         opts,
		log:          log,
		sock:         sock,
		queries:      make(chan chan Stats),
		calls:        make(chan func()),
		stopped:      make(chan struct{}),
		clients:      map[*zmtp.Conn]*client{},
		pipes:        map[string]*pipe{},
		stalledPipes: map[*pipe]struct{}{},
		store:        opts.Store,
		unconfirmed:  map[*client]struct{}{},
		confirmTimer: time.NewTimer(confirmEvery),
	}
	s.confirmTimer.Stop()
	for _, r := range recovered {
		p := newPipe(r.Name, s.store.Queue(r.Name))
		p.chunks = r.Chunks
		p.bytes = p.costOf(r.Chunks, r.Bytes)
		s.total += p.bytes
		s.pipes[p.name] = p
	}
	go s.run()
	return s, nil
}

// Endpoint is where the broker listens.
func (s *Server) Endpoint() string { return s.sock.Endpoint() }

// Stats returns a snapshot taken by the owning goroutine.
func (s *Server) Stats() Stats { return owner.Ask(s.queries, s.stopped, &s.final) }

// SetLimits changes PipeLimit and TotalLimit of the running broker (zero
// means the default). WRITEs held back that fit under raised limits are
// admitted at once; lowered limits hold back only later WRITEs: chunks
// already queued stay.
func (s *Server) SetLimits(pipeLimit, totalLimit int64) {
	o := Options{PipeLimit: pipeLimit, TotalLimit: totalLimit}.WithDefaults()
	owner.Do(s.calls, s.stopped, func() {
		s.opts.PipeLimit, s.opts.TotalLimit = o.PipeLimit, o.TotalLimit
		for p := range s.stalledPipes {
			s.admitPipe(p)
		}
		s.afterEvent()
	})
}

// Close stops the broker and returns its state at that moment; the store
// is closed, keeping what it keeps (the memory store discards all).
func (s *Server) Close() Stats {
	s.sock.Close()
	<-s.stopped
	return s.final
}

func (s *Server) run() {
	defer close(s.stopped)
	events := s.sock.Events()
	notes := s.store.Notes()
	for {
		var batch *zmtp.Batch
		var ok bool
		// Under load an event is almost always ready: take it with a
		// plain receive, far cheaper than the select below.
		select {
		case batch, ok = <-events:
		default:
			select {
			case batch, ok = <-events:
			case n := <-notes:
				s.complete(s.store.Handle(n))
				s.afterEvent()
				continue
			case <-s.confirmTimer.C:
				s.timerArmed = false
				s.afterEvent()
				continue
			case q := <-s.queries:
				s.confirmAll()
				q <- s.snapshot()
				continue
			case f := <-s.calls:
				s.confirmAll()
				f()
				continue
			}
		}
		if !ok {
			s.confirmAll()
			s.final = s.snapshot()
			s.closeStore()
			return
		}
		// Replies wake each connection's writer once, after the batch
		// (zmtp.Socket.Hold).
		s.sock.Hold()
		for _, ev := range batch.Events {
			s.dispatch(ev)
		}
		batch.Release()
		// Under load events never run dry: take the store's notes
		// too, or WRITEs would wait for their OKs until they do.
		select {
		case n := <-notes:
			s.complete(s.store.Handle(n))
			s.afterEvent()
		default:
		}
		s.sock.Flush()
	}
}

// closeStore closes the store once nothing is served any more.
func (s *Server) closeStore() {
	kept, err := s.store.Close()
	if err != nil {
		s.log.Error("closing the store", "err", err)
	}
	if kept.Chunks > 0 {
		s.log.Info("chunks kept for the next start", "pipes", kept.Pipes, "chunks", kept.Chunks, "bytes", kept.Bytes)
	}
}

// complete applies what the store completed: WRITEs stored get their OK,
// pipes that may serve again are served.
func (s *Server) complete(d Done) {
	for _, tok := range d.Stored {
		if c := tok.(*client); !c.gone {
			s.fill(c, c.storing.PopFront(), okReply, delivery{}, 0)
		}
	}
	for _, name := range d.Ready {
		if p := s.pipes[name]; p != nil {
			s.refill = append(s.refill, p)
		}
	}
	for _, r := range d.Refused {
		if p := s.pipes[r.Pipe]; p != nil && p.reader != nil {
			c := p.reader
			waiting := p.waiting
			p.reader, p.waiting = nil, nil
			if p.ack != nil {
				s.ackLeave(p, !c.lost)
			}
			for _, sl := range waiting {
				s.fill(c, sl, [][]byte{errFrame, []byte(r.Reason)}, delivery{}, 0)
			}
		}
	}
	for _, h := range d.Held {
		p := s.pipes[h.Pipe]
		if p == nil {
			continue
		}
		cost := p.costOf(h.Chunks, h.Bytes)
		p.chunks += h.Chunks
		p.bytes += cost
		s.total += cost
		if h.Chunks < 0 {
			s.admit(p)
			s.release(p)
		}
	}
}

// afterEvent serves pipes that got chunks back or became ready, and
// checks what the readers' sockets took.
func (s *Server) afterEvent() {
	for len(s.refill) > 0 {
		p := s.refill[len(s.refill)-1]
		s.refill = s.refill[:len(s.refill)-1]
		s.serveWaiting(p)
	}
	s.confirmAll()
}

// confirmAll confirms for every reader the chunks its socket took, and
// arms the timer if some are still on their way.
func (s *Server) confirmAll() {
	for c := range s.unconfirmed {
		s.confirm(c)
	}
	if len(s.unconfirmed) > 0 {
		if !s.timerArmed {
			// Armed once per period, not per event: under load the
			// events confirm, the timer only covers a quiet socket.
			s.timerArmed = true
			s.confirmTimer.Reset(confirmEvery)
		}
	}
}

// confirm tells the stores which chunks sent to c are written in full to
// its socket, and releases pipes that waited only for that.
func (s *Server) confirm(c *client) {
	written := c.conn.Written()
	for c.out.Len() > 0 && c.out.At(0).seq <= written {
		d := c.out.At(0).delivery
		if d.ack != nil {
			c.out.PopFront()
			s.ackWritten(d.p, d.ack)
			continue
		}
		cs := s.scratch[:0]
		for c.out.Len() > 0 && c.out.At(0).seq <= written && c.out.At(0).delivery == d {
			cs = append(cs, c.out.PopFront().chunk)
		}
		s.consume(d.p, cs)
	}
	if c.out.Len() == 0 {
		delete(s.unconfirmed, c)
	}
}

func (s *Server) snapshot() Stats {
	st := Stats{Clients: len(s.clients), Pipes: len(s.pipes), QueuedBytes: s.total}
	for _, p := range s.pipes {
		st.Chunks += p.chunks
		st.Stalled += len(p.stalled)
		if p.ack != nil {
			st.Unacked += p.ack.unacked()
		}
	}
	return st
}

func (s *Server) dispatch(ev zmtp.Event) {
	switch ev.Type {
	case zmtp.Connected:
		s.clients[ev.Conn] = &client{conn: ev.Conn, fromRE: ev.Conn.PeerType() == "REQ", open: map[string]*pipe{}}
	case zmtp.Message:
		if c := s.clients[ev.Conn]; c != nil {
			s.handle(c, ev.Frames)
		}
	case zmtp.Disconnected:
		if c := s.clients[ev.Conn]; c != nil {
			s.disconnect(c)
		}
	}
	s.afterEvent()
}

func (s *Server) handle(c *client, frames [][]byte) {
	env, body := splitEnvelope(frames, c.fromRE)
	req, bad := parseRequest(body)
	if bad != "" {
		s.refuse(c, env, bad)
		return
	}
	if req.verb == verbOpen {
		s.open(c, env, req.pipe, req.ack)
		return
	}
	p := c.open[string(req.pipe)]
	if p == nil {
		s.refuse(c, env, "pipe not open on this connection")
		return
	}
	switch req.verb {
	case verbClose:
		s.closePipe(c, p, true)
		s.respond(c, env, okReply, delivery{}, 0)
	case verbWrite:
		s.write(c, p, env, req.chunk)
	case verbRead:
		s.read(c, p, env)
	case verbAck:
		s.acknowledge(c, p, env, req.count)
	}
}

// chunkReply makes the one-frame reply to a READ. For small chunks the
// frame list is carved from a shared block, so a relayed chunk costs no
// allocation here. A block lives until all its replies are written, so
// one reply held back pins at most 128 small chunks (128 KiB).
func (s *Server) chunkReply(chunk []byte) [][]byte {
	s.counts.read++ // every chunk handed to a reader passes here
	if len(chunk) > 1024 {
		return [][]byte{chunk}
	}
	if len(s.replyBlock) == 0 {
		s.replyBlock = make([][]byte, 128)
	}
	r := s.replyBlock[:1:1]
	s.replyBlock = s.replyBlock[1:]
	r[0] = chunk
	return r
}

func (s *Server) refuse(c *client, env [][]byte, reason string) {
	s.log.Debug("invalid command", "conn", c.conn.ID(), "reason", reason)
	s.respond(c, env, [][]byte{errFrame, []byte(reason)}, delivery{}, 0)
}

func (s *Server) write(c *client, p *pipe, env [][]byte, chunk []byte) {
	q := p.queueOf(c)
	if !s.draining(p) && (q.held > 0 || !s.room(p, q)) {
		sl := s.owe(c, env)
		sl.heldBack = p
		p.stalled = append(p.stalled, stalledWrite{c: c, q: q, slot: sl, chunk: chunk})
		s.stalledPipes[p] = struct{}{}
		q.held++
		c.held += int64(len(chunk)) + chunkOverhead
		s.updatePause(c)
		return
	}
	if s.accept(c, p, q, chunk) {
		s.respond(c, env, okReply, delivery{}, 0)
		return
	}
	c.storing.PushBack(s.owe(c, env))
	s.updatePause(c)
}

// accept queues a chunk from writer c in the store and serves READs
// waiting on the pipe. It reports whether the chunk is stored; if not,
// the caller puts the WRITE's slot in c.storing, to be filled when the
// store says it is stored.
func (s *Server) accept(c *client, p *pipe, q *writerQueue, chunk []byte) bool {
	s.counts.written++
	stored := p.q.Append(q.id, chunk, c)
	p.bytes += p.cost(chunk)
	p.chunks++
	s.total += p.cost(chunk)
	s.serve(p)
	return stored
}

func (s *Server) read(c *client, p *pipe, env [][]byte) {
	if p.reader != nil && p.reader != c {
		s.refuse(c, env, "pipe already has a reader")
		return
	}
	if p.reader == nil {
		p.reader = c
		if c.acks(p) {
			p.ack = &ackState{}
		}
	}
	if len(p.waiting) == 0 && !s.atBound(p) {
		if ch, ok := s.take(p); ok {
			s.respond(c, env, s.chunkReply(ch.Data), delivery{p, p.ack}, ch.ID)
			s.admit(p)
			return
		}
	}
	p.waiting = append(p.waiting, s.owe(c, env))
	s.updatePause(c)
	s.admit(p)
}

// take takes the next chunk of p for its reader.
func (s *Server) take(p *pipe) (Chunk, bool) {
	ch, ok := p.q.Next()
	if !ok {
		return ch, false
	}
	p.bytes -= p.cost(ch.Data)
	p.chunks--
	p.taken++
	s.total -= p.cost(ch.Data)
	if p.ack != nil {
		s.hold(p, ch)
	}
	return ch, true
}

// admit lets held WRITEs in, oldest first, while there is room for them
// (or a READ waiting to take them at once), and then, if the total limit
// freed room, those of other pipes.
func (s *Server) admit(p *pipe) {
	s.admitPipe(p)
	if s.total < s.opts.TotalLimit {
		for q := range s.stalledPipes {
			s.admitPipe(q)
		}
	}
}

// room reports whether a chunk from writer q may be queued in p. A writer
// with nothing queued gets in even when the pipe is full, so a heavy
// writer cannot hold back a light one; a pipe thus exceeds PipeLimit by at
// most one chunk per writer. The total limit is strict. An acknowledging
// reader's unacknowledged chunks count, but not against its own WRITEs:
// it makes room by ACK, a command the broker stops reading once enough of
// its WRITEs are held (they stay bounded by MaxUnackedBytes).
func (s *Server) room(p *pipe, q *writerQueue) bool {
	bytes := p.bytes
	if p.ack != nil && p.reader != q.writer {
		bytes += p.ack.cost
	}
	return s.total < s.opts.TotalLimit && (bytes < s.opts.PipeLimit || p.q.Queued(q.id) == 0)
}

// admitPipe admits held WRITEs that now fit, in arrival order, skipping
// (for this pass) every later WRITE of a writer whose earlier one still
// does not fit, so each writer's order is kept.
func (s *Server) admitPipe(p *pipe) {
	if len(p.stalled) == 0 || (!s.draining(p) && s.total >= s.opts.TotalLimit) {
		return
	}
	s.pass++
	kept := p.stalled[:0]
	for _, w := range p.stalled {
		if w.q.pass != s.pass && (s.draining(p) || s.room(p, w.q)) {
			w.slot.heldBack = nil
			w.q.held--
			w.c.held -= int64(len(w.chunk)) + chunkOverhead
			if s.accept(w.c, p, w.q, w.chunk) {
				s.fill(w.c, w.slot, okReply, delivery{}, 0)
			} else {
				w.c.storing.PushBack(w.slot)
			}
			continue
		}
		w.q.pass = s.pass
		kept = append(kept, w)
	}
	clear(p.stalled[len(kept):])
	p.stalled = kept
	if len(p.stalled) == 0 {
		delete(s.stalledPipes, p)
	}
}

// respond replies at once unless earlier replies of the client are still
// owed, in which case the reply waits its turn. A READ reply carries
// where its chunk comes from and its store ID.
func (s *Server) respond(c *client, env, reply [][]byte, from delivery, id uint64) {
	if len(c.slots) == 0 {
		s.send(c, env, reply, from, id)
		return
	}
	s.fill(c, s.owe(c, env), reply, from, id)
}

// fill completes a slot and sends every reply that is now in turn.
func (s *Server) fill(c *client, sl *slot, reply [][]byte, from delivery, id uint64) {
	sl.reply, sl.ready, sl.from, sl.id = reply, true, from, id
	sl.cost += framesSize(reply)
	c.owed += framesSize(reply)
	n := 0
	for n < len(c.slots) && c.slots[n].ready {
		head := c.slots[n]
		c.owed -= head.cost
		s.send(c, head.env, head.reply, head.from, head.id)
		c.slots[n] = nil
		n++
	}
	if n > 0 {
		c.slots = c.slots[n:]
		if len(c.slots) == 0 {
			c.slots = nil
		}
	}
	s.updatePause(c)
}

func (s *Server) send(c *client, env, reply [][]byte, from delivery, id uint64) {
	frames := reply
	if len(env) > 0 {
		frames = append(env[:len(env):len(env)], reply...)
	}
	seq := c.sent + 1
	if err := c.conn.Send(frames); err != nil {
		// The reader is gone and its Disconnected event is on its way:
		// the chunk was never handed over. It stays out, never to be
		// written (written counts stay below seq), and goes back with
		// the others on disconnect, in the order they were taken.
		c.lost = true
	} else {
		c.sent = seq
	}
	if from.p != nil {
		c.out.PushBack(sentChunk{seq: seq, chunk: Chunk{Data: reply[0], ID: id}, delivery: from})
		s.unconfirmed[c] = struct{}{}
	}
}

// giveBack re-queues chunks taken from p that never reached their reader,
// ahead of all others. A READ waiting on the pipe (from a new reader) is
// served after the current event, outside any reply loop.
func (s *Server) giveBack(p *pipe, chunks []Chunk) {
	p.q.Return(chunks)
	s.counts.returned += uint64(len(chunks))
	for _, ch := range chunks {
		p.bytes += p.cost(ch.Data)
		s.total += p.cost(ch.Data)
	}
	p.chunks += len(chunks)
	p.taken -= len(chunks)
	s.refill = append(s.refill, p)
	s.log.Debug("chunks returned to pipe", "pipe", p.name, "chunks", len(chunks))
}

// updatePause stops reading a client's commands while it has too much held
// back (its backpressure) or its replies owed hold PendingLimit, and
// resumes once its held WRITEs are all admitted and half of that is paid
// (so a reader that always has about PendingLimit of READs waiting does
// not flap on every reply).
func (s *Server) updatePause(c *client) {
	limit := s.opts.PendingLimit
	want := c.held >= heldReadAhead || c.owed >= limit ||
		(c.paused && (c.held > 0 || c.owed > limit/2))
	if want == c.paused {
		return
	}
	c.paused = want
	if want {
		c.conn.Pause()
	} else {
		c.conn.Resume()
	}
}

// closePipe ends c's use of p. On CLOSE, READs of c still waiting on p
// are answered with an error; on disconnect there is nobody to answer.
func (s *Server) closePipe(c *client, p *pipe, answer bool) {
	delete(c.open, p.name)
	delete(c.acking, p)
	p.openers--
	if p.reader == c {
		p.reader = nil
		if p.ack != nil {
			// Before the store hears the reader left: a replicated
			// store hands back what it holds, these chunks included.
			// A lost connection writes nothing more: what it holds is
			// settled now, as on disconnect.
			s.ackLeave(p, answer && !c.lost)
		}
		if rt, ok := p.q.(ReaderTracker); ok {
			rt.ReaderLeft()
		}
		waiting := p.waiting
		p.waiting = nil
		for _, sl := range waiting {
			if answer {
				s.fill(c, sl, [][]byte{errFrame, []byte("pipe closed while READ was waiting")}, delivery{}, 0)
			}
		}
	}
	if q := p.writers[c]; q != nil {
		p.dropIfUnused(q)
	}
	s.release(p)
}

func (s *Server) release(p *pipe) {
	if p.idle() && s.pipes[p.name] == p {
		delete(s.pipes, p.name)
		delete(s.stalledPipes, p)
		p.q.Release()
	}
}

// disconnect forgets a connection. Chunks taken for it but never written
// to its socket go back to their pipes, ahead of everything else, in the
// order they were taken; WRITEs it had held back were never acknowledged
// and are dropped.
func (s *Server) disconnect(c *client) {
	delete(s.clients, c.conn)
	c.gone = true
	s.confirm(c) // the count of written messages is final now
	back := map[*pipe][]Chunk{}
	unsent := func(d delivery, ch Chunk) {
		if d.ack != nil {
			s.ackUnsent(d)
			return
		}
		back[d.p] = append(back[d.p], ch)
	}
	for c.out.Len() > 0 {
		o := c.out.PopFront()
		unsent(o.delivery, o.chunk)
	}
	delete(s.unconfirmed, c)
	dropped := 0
	for _, sl := range c.slots {
		switch {
		case sl.ready && sl.from.p != nil:
			unsent(sl.from, Chunk{Data: sl.reply[0], ID: sl.id})
		case sl.heldBack != nil:
			p := sl.heldBack
			for i, w := range p.stalled {
				if w.slot == sl {
					w.q.held--
					p.stalled = append(p.stalled[:i], p.stalled[i+1:]...)
					break
				}
			}
			if len(p.stalled) == 0 {
				delete(s.stalledPipes, p)
			}
			dropped++
		}
	}
	c.slots = nil
	// Chunks c holds as an acknowledging reader were taken after those
	// it took as a plain reader of the same pipe before CLOSEing it
	// (the modes do not overlap): as each giving back goes to the head,
	// they go back first.
	for _, p := range c.open {
		if p.reader == c && p.ack != nil {
			s.ackLeave(p, false)
		}
	}
	for p, chunks := range back {
		s.giveBack(p, chunks)
	}
	for _, p := range c.open {
		s.closePipe(c, p, false)
	}
	for _, p := range s.pipes {
		if q := p.writers[c]; q != nil {
			p.dropIfUnused(q)
			s.release(p)
		}
	}
	if dropped > 0 {
		s.log.Warn("client gone with unacknowledged WRITEs held by the memory limit; dropped them", "conn", c.conn.ID(), "writes", dropped)
	}
}

// serveWaiting hands queued chunks to READs waiting on p, then admits
// held WRITEs that now fit.
func (s *Server) serveWaiting(p *pipe) {
	s.serve(p)
	s.admit(p)
}

// serve hands queued chunks to READs waiting on p.
func (s *Server) serve(p *pipe) {
	for len(p.waiting) > 0 && !s.atBound(p) {
		ch, ok := s.take(p)
		if !ok {
			return
		}
		sl := p.waiting[0]
		p.waiting[0] = nil
		p.waiting = p.waiting[1:]
		s.fill(p.reader, sl, s.chunkReply(ch.Data), delivery{p, p.ack}, ch.ID)
	}
}

package zmtp

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by Send on a connection that has ended.
var ErrClosed = errors.New("zmtp: connection closed")

// EventType says what an Event reports.
type EventType uint8

const (
	// Connected: a peer finished its handshake. Always the first event of
	// a connection.
	Connected EventType = iota + 1
	// Message: a complete multipart message from the peer.
	Message
	// Disconnected: the connection ended. Always the last event of a
	// connection; Unsent holds what was never written to it.
	Disconnected
)

// Event is one thing that happened on a connection. Events of one
// connection arrive in order.
type Event struct {
	Type EventType
	Conn *Conn
	// Frames of a Message. The list may be carved from a block shared
	// with other messages: keep the frames you need, not the list.
	Frames [][]byte
	// Unsent lists, in order, the messages passed to Send that were not
	// written in full to the socket before it closed, so their owner can
	// take them back instead of losing them.
	Unsent []Outgoing
	// Err says why the connection ended (io.EOF when the peer closed it).
	Err error
}

// Batch is what a connection's reader delivers with one channel
// operation: every complete message it found in the bytes it read (at
// most maxBatch), or a Connected or Disconnected event. Waking the owner
// once per message cost more than the work on a small message (issue 14's
// profiles of all three services). A batch holds one connection's events,
// in order. The receiver owns it until it calls Release, which it must
// call once it has handled the events: a connection stops reading while
// maxUnreleased of its batches are not released.
type Batch struct {
	Events []Event
	from   *Conn // whose read credit Release gives back
	// lists lends its messages their frame lists, with
	// Options.ReleaseLists: used of them are lent, and short frames'
	// lists were wanted beyond them (it grows on Release).
	lists       [][]byte
	used, short int
}

// maxBatchLists caps a batch's lists: 128 messages of 8 frames.
const maxBatchLists = 1024

// maxBatch caps the events of one batch, so that a read buffer full of
// tiny messages does not become one huge batch, and the owner's Pause or
// a full send queue takes effect within a bounded number of messages.
const maxBatch = 128

// maxUnreleased bounds the batches of one connection delivered and not
// yet released: about a thousand messages read ahead, like libzmq's
// default high-water mark. Without it a peer that floods while the owner
// is busy filled the whole event buffer (shared by all connections) with
// its messages, ahead of every other connection's, and a Pause took
// effect only thousands of messages later (a Majordomo client past
// MaxPending still had enough read to fill its service's queue).
const maxUnreleased = 8

var batches = sync.Pool{New: func() any { return &Batch{Events: make([]Event, 0, 16)} }}

func newBatch() *Batch { return batches.Get().(*Batch) }

// Release hands b back once its events have been handled: the
// connection may read on (see maxUnreleased), and the batch is reused.
// The frames of its messages stay the receiver's (keep the frames, not
// the Events list).
func (b *Batch) Release() {
	if c := b.from; c != nil {
		b.from = nil
		if c.unreleased.Add(-1) == maxUnreleased-1 {
			signal(c.wakeReader)
		}
	}
	if cap(b.Events) > 4*maxBatch {
		return
	}
	clear(b.Events) // drop references to frames and connections
	b.Events = b.Events[:0]
	if b.used > 0 || b.short > 0 {
		clear(b.lists[:b.used])
		if b.short > 0 && len(b.lists) < maxBatchLists {
			b.lists = make([][]byte, min(maxBatchLists, max(64, 2*(b.used+b.short))))
		}
		b.used, b.short = 0, 0
	}
	batches.Put(b)
}

// Outgoing is a queued message with an optional reference for its sender,
// returned in Event.Unsent if it could not be written.
type Outgoing struct {
	Frames  [][]byte
	Ref     any
	command string // name of a ZMTP command (PING, PONG) we send ourselves
}

func (o Outgoing) size() int64 {
	n := int64(0)
	for _, f := range o.Frames {
		n += int64(len(f)) + 9
	}
	return n
}

var connIDs atomic.Uint64

// Conn is one ZMTP connection. Reading and writing each run on their own
// goroutine; the owner sees reads as Events and writes through Send, which
// never blocks.
type Conn struct {
	id       uint64
	nc       net.Conn
	br       *bufio.Reader // nil between messages (see limits.go)
	rs       readState
	opts     *Options
	minor    byte
	peerType string
	identity []byte
	remote   string
	peer     Peer
	peerKey  *CurveKey    // CURVE only
	sealer   *curveSealer // CURVE only; owned by the writer goroutine
	opener   *curveOpener // CURVE only; owned by the reader goroutine

	events chan<- *Batch
	done   <-chan struct{} // closed when nobody consumes events any more
	own    chan *Batch     // a dialed connection's events, read by Recv
	sock   *Socket         // an accepted connection's socket, for Hold
	recvB  *Batch          // the batch Recv is taking messages from
	recvAt int             // the next event of recvB
	// dialed marks our own side of a connection: it reads replies no
	// matter how much the application has queued to send, and reads to
	// the end even after a failed write, as replies may still be there.
	dialed bool
	// admitted: an accepted connection holding a Guard slot, given back
	// by releaseAll.
	admitted bool
	// Reader-goroutine state: when the peer last PINGed us and how often
	// it does, to keep it alive while we do not read it.
	lastPing      time.Time
	peerPingEvery time.Duration
	userClosed    chan struct{} // a dialed connection's Close was called
	block         frameBlock    // frame lists of messages read, see readBuffered
	batch         *Batch        // the batch the reader is filling
	err           error         // why the connection ended, set before readerDone

	mu          sync.Mutex
	outq        []Outgoing
	queuedMsgs  int           // queued or being written
	written     atomic.Uint64 // messages of Send written in full, see Written
	queuedBytes int64
	paused      bool
	unreleased  atomic.Int32 // batches delivered and not released
	pongQueued  bool         // a PONG waits in outq; further PINGs need none
	closed      bool         // writer has exited: Send fails
	werr        error        // why the writer exited (ErrClosed after Close)
	unsent      []Outgoing

	wakeWriter    chan struct{}
	wakeReader    chan struct{}
	closing       chan struct{}
	closeOnce     sync.Once
	userCloseOnce sync.Once
	writerDone    chan struct{}
	readerDone    chan struct{}
}

// ID is unique among all connections of this process and never reused.
func (c *Conn) ID() uint64 { return c.id }

// Identity is the Identity the peer announced in its READY, if any.
func (c *Conn) Identity() []byte { return c.identity }

// CurveKey is the peer's long-term public key, authenticated by the CURVE
// handshake (the client's key on an accepted connection, the server's on
// a dialed one); nil under NULL.
func (c *Conn) CurveKey() *CurveKey { return c.peerKey }

// PeerType is the peer's socket type, e.g. "DEALER" or "REQ".
func (c *Conn) PeerType() string { return c.peerType }

// Minor is the ZMTP minor version spoken: 0 for 3.0, 1 for 3.1.
func (c *Conn) Minor() byte { return c.minor }

// RemoteAddr describes the peer for logs.
func (c *Conn) RemoteAddr() string { return c.remote }

// Send queues a message for the peer and returns at once. It fails with
// ErrClosed once the connection has ended; a message accepted by Send is
// either written to the socket in full or returned in the Disconnected
// event's Unsent, never lost in between. Frames must not be modified
// afterwards.
func (c *Conn) Send(frames [][]byte) error { return c.SendRef(frames, nil) }

// SendRef is Send with a reference returned alongside the message in Unsent.
func (c *Conn) SendRef(frames [][]byte, ref any) error {
	return c.enqueue(Outgoing{Frames: frames, Ref: ref})
}

func (c *Conn) enqueue(o Outgoing) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	// Only the first message of a batch wakes the writer: it takes the
	// whole queue when it runs, so later ones need no channel operation.
	wake := len(c.outq) == 0
	c.outq = append(c.outq, o)
	c.queuedMsgs++
	c.queuedBytes += o.size()
	c.mu.Unlock()
	if wake && (c.sock == nil || !c.sock.hold(c)) {
		signal(c.wakeWriter)
	}
	return nil
}

// Queued reports the messages and bytes accepted by Send and not yet
// written, so an owner can tell a peer that has stopped reading.
func (c *Conn) Queued() (messages int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queuedMsgs, c.queuedBytes
}

// Written counts the messages accepted by Send that were written to the
// socket in full, in Send order: an owner that counts its Sends can tell
// which of them the peer's socket holds (a durable store marks a chunk
// consumed only then). Once Disconnected is delivered the count is final.
func (c *Conn) Written() uint64 { return c.written.Load() }

// Pause stops reading from the peer until Resume. Messages already read
// are still delivered: those of the connection's batches not yet released
// (at most maxUnreleased batches of maxBatch messages) and of the batch in
// the reader's hands. The broker uses it to hold back a client whose
// commands it cannot accept yet.
func (c *Conn) Pause() {
	c.mu.Lock()
	c.paused = true
	c.mu.Unlock()
}

// Resume undoes Pause.
func (c *Conn) Resume() {
	c.mu.Lock()
	c.paused = false
	c.mu.Unlock()
	signal(c.wakeReader)
}

// Close ends the connection after trying, for a short linger, to write
// what is queued. The Disconnected event follows.
func (c *Conn) Close() error {
	if c.dialed {
		c.userCloseOnce.Do(func() { close(c.userClosed) })
	}
	c.startClose()
	return nil
}

const linger = time.Second

func (c *Conn) startClose() {
	c.closeOnce.Do(func() {
		close(c.closing)
		// Unblocks a writer stuck on a peer that does not read.
		c.nc.SetWriteDeadline(time.Now().Add(linger))
	})
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// newConn takes over from the handshake, whose reader hsr may hold bytes
// the peer sent after its READY.
func newConn(id uint64, nc net.Conn, hsr *bufio.Reader, opts *Options, hs handshakeResult, events chan<- *Batch, done <-chan struct{}) *Conn {
	c := &Conn{
		id:         id,
		nc:         nc,
		opts:       opts,
		minor:      hs.minor,
		peerType:   hs.peerType,
		identity:   hs.identity,
		remote:     remoteName(nc),
		peerKey:    hs.mech.peerKey,
		sealer:     hs.mech.sealer,
		opener:     hs.mech.opener,
		events:     events,
		done:       done,
		wakeWriter: make(chan struct{}, 1),
		wakeReader: make(chan struct{}, 1),
		closing:    make(chan struct{}),
		writerDone: make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	c.initReadState(hsr, opts.Guard)
	if opts.ReleaseLists {
		c.block.conn = c
	}
	return c
}

func remoteName(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil && a.String() != "" {
		return a.Network() + ":" + a.String()
	}
	return nc.LocalAddr().Network() + ":" + nc.LocalAddr().String()
}

// start runs the connection's goroutines; announce sends Connected first.
func (c *Conn) start(announce bool) {
	go c.writeLoop()
	go c.readLoop(announce)
}

// add appends an event to the batch being filled.
func (c *Conn) add(ev Event) {
	b := c.filling()
	b.Events = append(b.Events, ev)
}

// filling returns the batch being filled, made now if need be.
func (c *Conn) filling() *Batch {
	if c.batch == nil {
		c.batch = newBatch()
		c.batch.from = c
		c.unreleased.Add(1)
	}
	return c.batch
}

// batchLists returns a list for n frames lent by the batch being filled,
// or nil if it has too few left. Every list the reader takes is for a
// message of that batch (the message is added to it before it is
// delivered), so the list is free again once the batch is released.
func (c *Conn) batchLists(n int) [][]byte {
	b := c.filling()
	if len(b.lists)-b.used < n {
		b.short += n
		return nil
	}
	f := b.lists[b.used : b.used+n : b.used+n]
	b.used += n
	return f
}

// flush delivers the batch being filled, if any.
func (c *Conn) flush() bool {
	b := c.batch
	if b == nil {
		return true
	}
	c.batch = nil
	received.Add(uint64(len(b.Events)))
	select { // a plain send first: cheaper than a two-way select
	case c.events <- b:
		return true
	default:
	}
	select {
	case c.events <- b:
		return true
	case <-c.done:
		return false
	}
}

func (c *Conn) readLoop(announce bool) {
	defer close(c.readerDone)
	var err error
	if announce {
		c.add(Event{Type: Connected, Conn: c})
		if !c.flush() {
			err = ErrClosed
		}
	}
	for err == nil {
		var room int
		if room, err = c.waitReadable(); err != nil {
			break
		}
		var frames [][]byte
		frames, err = c.readMessage()
		if err == errDelivered {
			err = nil
			continue
		}
		if err != nil {
			err = c.deadlineErr(err)
		}
		if c.rs.partial {
			c.endPartial()
		}
		c.rs.arrived = time.Time{}
		if err == nil {
			c.add(Event{Type: Message, Conn: c, Frames: frames})
			// Every other message already complete in what was read
			// goes with it: one channel operation, one wake-up of the
			// owner, for the lot.
			for n := 1; n < room; n++ {
				if frames = c.nextBuffered(); frames == nil {
					break
				}
				c.add(Event{Type: Message, Conn: c, Frames: frames})
			}
		}
		// Messages read before an error (and subscriptions) are
		// delivered before the Disconnected event.
		if !c.flush() && err == nil {
			err = ErrClosed
		}
	}
	// If the writer ended first, the reader's error is likely just the
	// deadline the writer set to wake it: report why the writer ended.
	c.mu.Lock()
	writerEnded := c.closed
	if writerEnded && c.werr != nil {
		err = c.werr
	}
	c.mu.Unlock()
	c.startClose()
	if !c.dialed && !writerEnded && err != ErrClosed {
		// The peer has gone (or broke the protocol): writing on would
		// only put messages where nobody reads them (a TCP peer that
		// sent FIN still accepts bytes). Stop now, so what is queued
		// comes back in Unsent instead of counting as delivered.
		c.nc.SetWriteDeadline(time.Now())
	}
	c.nc.SetReadDeadline(time.Now())
	c.releaseAll()
	<-c.writerDone
	c.nc.Close()
	if err == nil {
		err = ErrClosed
	}
	c.err = err
	c.add(Event{Type: Disconnected, Conn: c, Unsent: c.unsent, Err: err})
	c.flush()
}

// nextBuffered returns the next data message if it is complete in what
// has been read already, else nil, consuming nothing: it takes no
// syscall, no deadline and no budget. (CURVE messages are opened one
// frame at a time by readMessage.)
func (c *Conn) nextBuffered() [][]byte {
	if c.opener != nil {
		return nil
	}
	budget := c.opts.MaxMessageSize
	if c.br != nil {
		if c.br.Buffered() == 0 {
			return nil
		}
		msg, _ := readBuffered(c.br, budget, c.opts.MaxFrames, &c.block)
		return msg
	}
	msg, used := decodeMessage(c.rs.src.pending, budget, c.opts.MaxFrames, &c.block)
	if msg != nil {
		if c.rs.src.pending = c.rs.src.pending[used:]; len(c.rs.src.pending) == 0 {
			c.rs.src.pending = nil
		}
	}
	return msg
}

// waitReadable blocks while the connection is paused or its send queue is
// over its bounds. Meanwhile it checks now and then that the peer is still
// there, so a paused peer that dies is noticed. room is how many messages
// may be read before it is asked again: what the send queue has room for
// (each message may bring a reply), at most maxBatch.
func (c *Conn) waitReadable() (room int, err error) {
	var tick *time.Ticker
	defer func() {
		if tick != nil {
			tick.Stop()
		}
	}()
	for {
		room, blocked := c.room()
		if !blocked {
			return room, nil
		}
		if tick == nil {
			every := 250 * time.Millisecond
			if c.minor >= 1 {
				every = keepAliveEvery
				if c.peerPingEvery > 0 {
					every = min(every, c.peerPingEvery/2)
				}
			}
			tick = time.NewTicker(every)
		}
		select {
		case <-c.wakeReader:
		case <-c.closing:
			return 0, ErrClosed
		case <-tick.C:
			// Unread data, in c.br or in the kernel, does not hide a
			// hang-up (see peerHungUp).
			if peerHungUp(c.nc) {
				return 0, io.EOF
			}
			// Paused for a while: hold no read buffer (a short pause
			// is not worth the copy).
			c.spillReader()
			c.keepPeerAlive()
		}
	}
}

// room is how many messages may be read now (see waitReadable), or
// blocked.
func (c *Conn) room() (room int, blocked bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room = maxBatch
	if !c.dialed {
		room = min(room, c.opts.SendQueueMessages-c.queuedMsgs)
	}
	return room, c.paused || room <= 0 || (!c.dialed && c.queuedBytes >= c.opts.SendQueueBytes) ||
		c.unreleased.Load() >= maxUnreleased
}

// keepAliveEvery is how often a ZMTP 3.1 peer we are not reading is
// PINGed (or more often, if it PINGs us more often).
const keepAliveEvery = 100 * time.Millisecond

// keepPeerAlive PINGs a 3.1 peer while we are not reading it: its own
// PINGs wait unread in our socket, and without traffic from us a peer
// with heartbeats on would time the connection out (libzmq's
// HEARTBEAT_TIMEOUT) and lose its replies on reconnect. Nothing is sent
// while other messages are on their way.
func (c *Conn) keepPeerAlive() {
	if c.minor < 1 {
		return
	}
	c.mu.Lock()
	idle := c.queuedMsgs == 0
	c.mu.Unlock()
	if idle {
		c.enqueue(Outgoing{Frames: [][]byte{pingData(0)}, command: "PING"})
	}
}

// perFrameCost is charged against MaxMessageSize for each frame (about
// what a frame costs in memory beyond its body) so that a message of
// millions of empty frames is refused too.
const perFrameCost = 64

func (c *Conn) readMessage() ([][]byte, error) {
	var frames [][]byte
	budget := c.opts.MaxMessageSize
	hb := c.opts.HeartbeatInterval > 0 && c.minor >= 1
	for {
		if hb {
			c.nc.SetReadDeadline(c.rs.sooner(time.Now().Add(c.opts.HeartbeatTimeout)))
		}
		if len(frames) == 0 {
			if c.br == nil || c.br.Buffered() == 0 {
				if msg, err := c.awaitMessage(budget); msg != nil || err != nil {
					return msg, err
				}
			}
			if c.opener == nil {
				// Fill the buffer with what the peer has sent, then
				// take the common case, a whole small message, in one
				// piece.
				if _, err := c.br.Peek(1); err != nil {
					return nil, err
				}
				if msg, ok := readBuffered(c.br, budget, c.opts.MaxFrames, &c.block); ok {
					return msg, nil
				}
			}
			if !c.rs.partial {
				c.beginPartial()
			}
		}
		flags, body, err := c.readFrame(budget)
		if err != nil {
			return nil, err
		}
		if flags&flagCommand != 0 {
			// libzmq (4.3) sends the PONG for our PING as soon as it
			// can, between two frames of a message it is writing, so
			// heartbeats are taken anywhere; other commands are not.
			if len(frames) > 0 && !isHeartbeat(body) {
				return nil, protoErr("command frame inside a multipart message")
			}
			if err := c.handleCommand(body); err != nil {
				return nil, err
			}
			continue
		}
		budget -= int64(len(body)) + perFrameCost
		if flags&flagMore == 0 && len(frames) == 0 {
			// A one-frame message (every one under CURVE, which skips
			// readBuffered) takes its list from the block too, unless
			// its body is large: a block lives while any list carved
			// from it does, or the reader still carves from it, and
			// keeps every body in it alive (256 bodies of 1 MiB).
			if len(body) > copyLimit {
				return [][]byte{body}, nil
			}
			one := c.block.take(1)
			one[0] = body
			return one, nil
		}
		frames = append(frames, body)
		if flags&flagMore == 0 {
			return frames, nil
		}
		if budget < 0 {
			return nil, ErrTooLarge
		}
		if len(frames) >= c.opts.MaxFrames {
			return nil, fmt.Errorf("%w: more than %d frames", ErrTooLarge, c.opts.MaxFrames)
		}
	}
}

func (c *Conn) readFrame(budget int64) (flags byte, body []byte, err error) {
	if c.opener != nil {
		return c.opener.readFrame(c.br, budget, &c.rs)
	}
	return readFrameInto(c.br, budget, nil, &c.rs)
}

func isHeartbeat(command []byte) bool {
	name, _, err := parseCommand(command)
	return err == nil && (name == "PING" || name == "PONG")
}

// handleCommand acts on a command frame after the handshake. PINGs are
// answered here and never reach the owner.
func (c *Conn) handleCommand(body []byte) error {
	name, data, err := parseCommand(body)
	if err != nil {
		return err
	}
	switch name {
	case "PING":
		if len(data) < 2 {
			return protoErr("short PING")
		}
		now := time.Now()
		if !c.lastPing.IsZero() {
			c.peerPingEvery = now.Sub(c.lastPing)
		}
		c.lastPing = now
		ctx := data[2:]
		if len(ctx) > 16 {
			ctx = ctx[:16]
		}
		// One PONG waiting is enough: a peer flooding PINGs without
		// reading must not grow our queue.
		c.mu.Lock()
		queued := c.pongQueued
		c.pongQueued = true
		c.mu.Unlock()
		if queued {
			return nil
		}
		return c.enqueue(Outgoing{Frames: [][]byte{append([]byte(nil), ctx...)}, command: "PONG"})
	case "ERROR":
		return protoErr("peer sent ERROR: %s", errorReason(data))
	case "READY":
		return protoErr("READY after handshake")
	case "SUBSCRIBE", "CANCEL":
		// ZMTP 3.1 subscriptions reach the owner as the 3.0 messages
		// (0x01+topic, 0x00+topic), so it handles one form only.
		op := byte(1)
		if name == "CANCEL" {
			op = 0
		}
		msg := append(make([]byte, 0, 1+len(data)), op)
		msg = append(msg, data...)
		// Delivered at once: the next frame may be long in coming.
		c.add(Event{Type: Message, Conn: c, Frames: [][]byte{msg}})
		if !c.flush() {
			return ErrClosed
		}
	}
	return nil // PONG, and commands of later versions, are ignored as the RFC asks
}

func (c *Conn) writeLoop() {
	defer close(c.writerDone)
	var hb <-chan time.Time
	if c.opts.HeartbeatInterval > 0 && c.minor >= 1 {
		t := time.NewTicker(c.opts.HeartbeatInterval)
		defer t.Stop()
		hb = t.C
	}
	var w batchWriter
	var batch []Outgoing
	closing := false
	for {
		if !closing {
			select {
			case <-c.wakeWriter:
			case <-c.closing:
				closing = true
			case <-hb:
				// PING every interval even while we are sending: the
				// peer may have nothing else to say, and its silence
				// would otherwise time it out (libzmq does the same).
				c.enqueue(Outgoing{Frames: [][]byte{pingData(c.opts.HeartbeatTimeout)}, command: "PING"})
			}
		}
		c.mu.Lock()
		batch, c.outq = c.outq, batch[:0]
		c.pongQueued = false
		c.mu.Unlock()
		if len(batch) == 0 {
			if closing {
				c.finishWriter(nil, ErrClosed)
				return
			}
			continue
		}
		n, err := w.write(c.nc, batch, c.sealer)
		var bytes int64
		var sent uint64
		for _, o := range batch[:n] {
			bytes += o.size()
			if o.command == "" {
				sent++
			}
		}
		c.written.Add(sent)
		c.mu.Lock()
		c.queuedMsgs -= n
		c.queuedBytes -= bytes
		c.mu.Unlock()
		signal(c.wakeReader)
		if err != nil {
			c.finishWriter(batch[n:], err)
			return
		}
		clear(batch) // drop references to sent payloads
	}
}

// finishWriter marks the connection closed and keeps what was never
// written, in order, for the Disconnected event, and why the writer ended.
func (c *Conn) finishWriter(unwritten []Outgoing, err error) {
	c.mu.Lock()
	c.closed = true
	c.werr = err
	var unsent []Outgoing
	for _, o := range append(unwritten, c.outq...) {
		if o.command == "" {
			unsent = append(unsent, o)
		}
	}
	c.unsent = unsent
	c.outq = nil
	c.mu.Unlock()
	c.startClose()
	if !c.dialed || err == ErrClosed {
		// Wakes a reader blocked in Read so it notices the end.
		c.nc.SetReadDeadline(time.Now())
	}
}

func pingData(ttl time.Duration) []byte {
	return binary.BigEndian.AppendUint16(nil, uint16(min(ttl/(100*time.Millisecond), 0xFFFF)))
}

// batchWriter encodes messages into one vectored write: headers and small
// frames are copied into a scratch buffer, large frames are written from
// where they are.
type batchWriter struct {
	grown   bool // the send buffer was grown for a bigFrame
	scratch []byte
	bufs    net.Buffers
	// out is what WriteTo consumes: a field, as a local Buffers would
	// escape through the io.Writer and cost an allocation per write.
	out  net.Buffers
	ends []int64
	raw  rawWriter
}

const copyLimit = 4096

// growFor grows nc's send buffer, once, when it first carries a bigFrame.
func (w *batchWriter) growFor(nc net.Conn, f []byte) {
	if len(f) >= bigFrame && !w.grown {
		w.grown = true
		growSendBuffer(nc)
	}
}

// write writes batch and returns how many messages were written in full.
// Under CURVE, sealer boxes each frame.
func (w *batchWriter) write(nc net.Conn, batch []Outgoing, sealer *curveSealer) (int, error) {
	if sealer != nil {
		return w.writeSealed(nc, batch, sealer)
	}
	w.scratch, w.bufs, w.ends = w.scratch[:0], w.bufs[:0], w.ends[:0]
	segStart, large := 0, int64(0)
	for _, o := range batch {
		if o.command != "" {
			w.scratch = appendCommand(w.scratch, o.command, o.Frames[0])
			w.ends = append(w.ends, int64(len(w.scratch))+large)
			continue
		}
		for i, f := range o.Frames {
			var flags byte
			if i < len(o.Frames)-1 {
				flags = flagMore
			}
			w.scratch = appendFrameHeader(w.scratch, flags, len(f))
			if len(f) <= copyLimit {
				w.scratch = append(w.scratch, f...)
				continue
			}
			w.growFor(nc, f)
			w.bufs = append(w.bufs, w.scratch[segStart:], f)
			segStart = len(w.scratch)
			large += int64(len(f))
		}
		w.ends = append(w.ends, int64(len(w.scratch))+large)
	}
	if segStart < len(w.scratch) {
		w.bufs = append(w.bufs, w.scratch[segStart:])
	}
	w.out = w.bufs
	written, err := w.writeTo(nc, &w.out)
	w.out = nil
	clear(w.bufs)
	if err == nil {
		return len(batch), nil
	}
	n := 0
	for n < len(w.ends) && w.ends[n] <= written {
		n++
	}
	return n, err
}

// sealedFlushAt is how much boxed data is gathered before it is written:
// boxing copies every frame, so a batch of large ones is written in parts
// rather than held whole.
const sealedFlushAt = 256 << 10

// sealedScratchKeep is the largest boxed-batch buffer a connection keeps
// between batches.
const sealedScratchKeep = 64 << 10

// writeSealed is write under CURVE: every frame and command is boxed in a
// MESSAGE frame in w.scratch.
func (w *batchWriter) writeSealed(nc net.Conn, batch []Outgoing, s *curveSealer) (int, error) {
	w.scratch, w.ends = w.scratch[:0], w.ends[:0]
	var flushed int64 // bytes written before w.scratch[0]
	for i, o := range batch {
		if o.command != "" {
			w.scratch = s.appendFrame(w.scratch, curveCommand, o.command, o.Frames[0])
		} else {
			for j, f := range o.Frames {
				w.growFor(nc, f)
				var inner byte
				if j < len(o.Frames)-1 {
					inner = curveMore
				}
				w.scratch = s.appendFrame(w.scratch, inner, "", f)
			}
		}
		w.ends = append(w.ends, flushed+int64(len(w.scratch)))
		if len(w.scratch) < sealedFlushAt && i < len(batch)-1 {
			continue
		}
		n, err := nc.Write(w.scratch)
		if err != nil {
			written := flushed + int64(n)
			done := 0
			for done < len(w.ends) && w.ends[done] <= written {
				done++
			}
			return done, err
		}
		flushed += int64(len(w.scratch))
		w.scratch = w.scratch[:0]
	}
	if cap(w.scratch) > sealedScratchKeep {
		w.scratch = nil // an idle connection keeps no large buffer
	}
	return len(batch), nil
}

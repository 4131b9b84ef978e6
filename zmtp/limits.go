package zmtp

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// What a connection holds while reading is bounded for every peer,
// admitted or not:
//   - the handshake reads through a handshakeBufferSize buffer; the
//     64 KiB read buffer comes after it, and only while the peer has
//     bytes for us: a connection waiting for its next message holds none
//     (idle peers cost their goroutines and little else);
//   - a frame's body grows as its bytes arrive (readFrameInto);
//   - read buffers and the bodies of messages being received are charged
//     to the Guard's receive budget, shared by all its sockets: over it,
//     a connection waits (reading nothing more) until there is room;
//   - a message must arrive whole within the Guard's MessageTimeout, and
//     a connection may stay silent between messages for IdleTimeout.

const (
	readBufferSize      = 64 << 10
	handshakeBufferSize = 256
	smallRead           = 512
	// firstChunk is the least a frame body gets up front; beyond it, it
	// grows with the bytes that arrive (readFrameInto).
	firstChunk = 4 << 10
)

// spareReaders keeps read buffers given back, for the next connection
// that needs one: a bounded free list rather than a sync.Pool, which
// every GC empties, so busy connections (large messages bring many GCs)
// do not allocate and zero a new 64 KiB buffer per message. At most
// 4 MiB waits here.
var spareReaders = make(chan *bufio.Reader, 64)

func getReader(src *connSource) *bufio.Reader {
	select {
	case br := <-spareReaders:
		br.Reset(src)
		return br
	default:
		return bufio.NewReaderSize(src, readBufferSize)
	}
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	select {
	case spareReaders <- br:
	default:
	}
}

// ErrMessageTimeout ends a connection whose peer did not finish a message
// within the Guard's MessageTimeout; ErrIdleTimeout one that said nothing
// for its IdleTimeout.
var (
	ErrMessageTimeout = errors.New("zmtp: message not completed in time")
	ErrIdleTimeout    = errors.New("zmtp: connection idle too long")
)

// connSource is what a connection's read buffer reads from: the bytes the
// handshake buffer read ahead, then the socket.
type connSource struct {
	nc      net.Conn
	pending []byte
}

func (s *connSource) Read(p []byte) (int, error) {
	if len(s.pending) > 0 {
		n := copy(p, s.pending)
		if s.pending = s.pending[n:]; len(s.pending) == 0 {
			s.pending = nil
		}
		return n, nil
	}
	return s.nc.Read(p)
}

// readState is a connection's reading resources, owned by its reader.
type readState struct {
	src      connSource
	rc       syscall.RawConn // to wait for data without a buffer; nil if none
	readFn   func(uintptr) bool
	inqFn    func(uintptr) // rs.inq, bound once
	bodyFn   func(uintptr) bool
	body     []byte // what bodyFn reads into
	bodyN    int
	bodyErr  syscall.Errno
	inqN     int
	small    [smallRead]byte // see readSmall
	smallN   int
	smallErr syscall.Errno
	guard    *Guard
	conn     *Conn
	held     int64     // bytes charged to the guard's budget
	partial  bool      // a message is being received
	due      time.Time // when it must be complete
	arrived  time.Time // when the bytes awaitMessage waited for came
	idleAt   time.Time // the idle deadline set on the socket, if any

	// TCP only, see drained_linux.go: inqOn, TCP_INQ is on; waitFirst,
	// readInto waits before reading; inPlace, what deliverInPlace did.
	inqOn     bool
	waitFirst bool
	inPlace   inPlace
}

// sooner is t, or the message's deadline if that comes first.
func (rs *readState) sooner(t time.Time) time.Time {
	if rs.partial && !rs.due.IsZero() && rs.due.Before(t) {
		return rs.due
	}
	return t
}

// unguarded is the Guard of dialed connections: no limits.
var unguarded Guard

// initReadState takes over the handshake buffer's read-ahead.
func (c *Conn) initReadState(hsr *bufio.Reader, g *Guard) {
	c.rs.src.nc = c.nc
	if n := hsr.Buffered(); n > 0 {
		b, _ := hsr.Peek(n)
		c.rs.src.pending = append([]byte(nil), b...)
	}
	if sc, ok := c.nc.(syscall.Conn); ok {
		c.rs.rc, _ = sc.SyscallConn()
	}
	c.rs.guard = g
	c.rs.conn = c
	c.rs.useINQ(c.nc)
	c.rs.inqFn = c.rs.inq
	c.rs.readFn = c.rs.readInto
	c.rs.bodyFn = c.rs.readBodyFn
}

// awaitMessage is called between messages with nothing buffered: it gives
// the read buffer back and waits for the peer's next bytes (at most
// IdleTimeout). A message complete in them (a small one, usually) is
// returned at once, holding no buffer and no budget. Otherwise a message
// is arriving: it takes a read buffer, charged to the budget, waiting for
// room until the message's deadline.
func (c *Conn) awaitMessage(budget int64) ([][]byte, error) {
	c.releaseReader()
	if idle := c.rs.guard.cfg.IdleTimeout; idle > 0 {
		c.rs.idleAt = time.Now().Add(idle)
		d := c.rs.idleAt
		if c.opts.HeartbeatInterval > 0 && c.minor >= 1 {
			if hb := time.Now().Add(c.opts.HeartbeatTimeout); hb.Before(d) {
				d = hb
			}
		}
		c.nc.SetReadDeadline(d)
	}
	if len(c.rs.src.pending) == 0 {
		if err := c.readSmall(); err != nil {
			return nil, err
		}
	}
	if c.opener == nil {
		if msg, used := decodeMessage(c.rs.src.pending, budget, c.opts.MaxFrames, &c.block); msg != nil {
			if c.rs.src.pending = c.rs.src.pending[used:]; len(c.rs.src.pending) == 0 {
				c.rs.src.pending = nil
			}
			return msg, nil
		}
	}
	// Waiting for room in the budget counts against the deadline of the
	// message that has begun.
	if t := c.rs.guard.cfg.MessageTimeout; t > 0 {
		c.rs.arrived = time.Now()
		c.rs.due = c.rs.arrived.Add(t)
	}
	if err := c.charge(readBufferSize); err != nil {
		return nil, err
	}
	c.br = getReader(&c.rs.src)
	return nil, nil
}

// releaseReader returns an empty read buffer to the pool.
func (c *Conn) releaseReader() {
	if c.br == nil || c.br.Buffered() > 0 {
		return
	}
	putReader(c.br)
	c.br = nil
	c.rs.guard.unreserve(c, c.rs.held)
	c.rs.held = 0
}

// beginPartial notes that a message is arriving in pieces and sets its
// deadline.
func (c *Conn) beginPartial() {
	c.rs.partial = true
	if t := c.rs.guard.cfg.MessageTimeout; t > 0 {
		start := c.rs.arrived
		if start.IsZero() {
			start = time.Now()
		}
		c.rs.due = start.Add(t)
		c.nc.SetReadDeadline(c.rs.due)
	} else if !c.rs.idleAt.IsZero() {
		c.nc.SetReadDeadline(time.Time{})
	}
	c.rs.idleAt = time.Time{}
}

// endPartial gives back what the finished (or abandoned) message held,
// except the read buffer, and lifts its deadline.
func (c *Conn) endPartial() {
	c.rs.partial = false
	if c.br != nil && c.rs.held > readBufferSize {
		c.rs.guard.unreserve(c, c.rs.held-readBufferSize)
		c.rs.held = readBufferSize
	}
	if !c.rs.due.IsZero() {
		c.rs.due = time.Time{}
		c.nc.SetReadDeadline(time.Time{})
	}
}

// spillReader keeps what a paused connection has buffered in an exact
// copy and returns its read buffer and budget: a peer we do not read
// holds no more than what it sent.
func (c *Conn) spillReader() {
	if c.br == nil || c.rs.partial {
		return
	}
	if n := c.br.Buffered(); n > 0 {
		b, _ := c.br.Peek(n)
		c.rs.src.pending = append(append([]byte(nil), b...), c.rs.src.pending...)
		c.br.Discard(n)
	}
	c.releaseReader()
}

// releaseAll gives back everything when the connection ends.
func (c *Conn) releaseAll() {
	c.rs.guard.unreserve(c, c.rs.held)
	c.rs.held = 0
	if c.admitted {
		c.rs.guard.release(c.peer)
	}
	if c.br != nil {
		putReader(c.br)
		c.br = nil
	}
}

// charge takes n bytes of the budget, waiting for room until the
// message's deadline.
func (c *Conn) charge(n int) error { return c.rs.charge(n) }

func (rs *readState) charge(n int) error {
	if err := rs.guard.reserve(rs.conn, int64(n), rs.due, rs.conn.closing); err != nil {
		return err
	}
	rs.held += int64(n)
	return nil
}

// deadlineErr names a deadline that ended a read.
func (c *Conn) deadlineErr(err error) error {
	if errors.Is(err, ErrMessageTimeout) {
		return err
	}
	if c.rs.partial && !c.rs.due.IsZero() && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(c.rs.due) {
		return fmt.Errorf("%w (within %v)", ErrMessageTimeout, c.rs.guard.cfg.MessageTimeout)
	}
	if !c.rs.idleAt.IsZero() && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(c.rs.idleAt) {
		return fmt.Errorf("%w (%v)", ErrIdleTimeout, c.rs.guard.cfg.IdleTimeout)
	}
	return err
}

// budget is the Guard's receive budget.
type budget struct {
	limit int64 // 0: none

	mu   sync.Mutex
	used int64
	over *Conn         // the one connection allowed past the limit
	room chan struct{} // closed when bytes are given back
}

// reserve takes n bytes for c, waiting while they do not fit. So that a
// message larger than the whole budget (or many partial ones holding it)
// cannot stop everything, one connection at a time may go over the limit
// and keeps that right until it has given back all it holds.
func (g *Guard) reserve(c *Conn, n int64, due time.Time, stop <-chan struct{}) error {
	b := &g.budget
	if b.limit <= 0 {
		return nil
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		b.mu.Lock()
		if b.used+n <= b.limit || b.over == c || b.over == nil {
			if b.used+n > b.limit {
				b.over = c
			}
			b.used += n
			b.mu.Unlock()
			return nil
		}
		if b.room == nil {
			b.room = make(chan struct{})
		}
		room := b.room
		b.mu.Unlock()
		var expired <-chan time.Time
		if !due.IsZero() {
			if timer == nil {
				timer = time.NewTimer(time.Until(due))
			}
			expired = timer.C
		}
		select {
		case <-room:
		case <-stop:
			return ErrClosed
		case <-expired:
			return fmt.Errorf("%w (waiting for the receive budget)", ErrMessageTimeout)
		}
	}
}

// unreserve gives back n bytes held by c; c's right to go past the limit
// ends with it (it gives bytes back when its message is done).
func (g *Guard) unreserve(c *Conn, n int64) {
	b := &g.budget
	if b.limit <= 0 || n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	if b.over == c || b.used <= b.limit {
		b.over = nil
	}
	if b.room != nil {
		close(b.room)
		b.room = nil
	}
	b.mu.Unlock()
}

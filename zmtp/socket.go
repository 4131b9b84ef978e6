package zmtp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

type handshakeResult struct {
	minor    byte
	peerType string
	identity []byte
	mech     mechResult
}

// handshake exchanges greetings and runs the security mechanism (NULL or
// CURVE, mechanism.go), and checks that the peer's socket type may talk
// to ours.
func handshake(nc net.Conn, br *bufio.Reader, opts *Options, asServer bool) (hs handshakeResult, err error) {
	nc.SetDeadline(time.Now().Add(opts.HandshakeTimeout))
	defer nc.SetDeadline(time.Time{})
	mech := mechanismName(opts)
	if _, err = nc.Write(greeting(mech, asServer)); err != nil {
		return hs, err
	}
	var peerMech string
	if hs.minor, peerMech, err = readGreeting(br); err != nil {
		if err == io.ErrUnexpectedEOF {
			// libzmq hangs up this way, without the rest of its
			// greeting, when it reads a mechanism it does not use.
			err = fmt.Errorf("peer hung up during the greeting, as libzmq does on a security mechanism mismatch (this endpoint requires %s): %w", mech, err)
		}
		return hs, err
	}
	if peerMech != mech {
		// A libzmq peer gives up on the greeting alone; the ERROR is for
		// peers that read on, and the log says what happened.
		err = protoErr("security mechanism mismatch: peer offers %s, this endpoint requires %s", peerMech, mech)
		nc.Write(errorCommand(reasonOf(err)))
		return hs, err
	}
	ready := appendMetadata(nil, [2]string{"Socket-Type", opts.SocketType}, [2]string{"Identity", string(opts.Identity)})
	hs.mech, err = exchangeCommands(nc, br, opts, asServer, ready, func(md metadata) error {
		hs.peerType = string(md["socket-type"])
		hs.identity = md["identity"]
		if !compatibleTypes(opts.SocketType, hs.peerType) {
			return protoErr("socket type %s cannot talk to %s", hs.peerType, opts.SocketType)
		}
		return nil
	})
	return hs, err
}

// Socket is the listening side: it accepts any number of peers and reports
// each peer's connection, messages and disconnection as Events on one
// channel, so a single goroutine can own all broker state.
type Socket struct {
	opts     Options
	l        net.Listener
	endpoint string
	events   chan *Batch
	done     chan struct{}
	wg       sync.WaitGroup

	mu      sync.Mutex
	conns   map[*Conn]struct{}
	pending map[net.Conn]struct{} // peers still in their handshake
	closed  bool

	holdMu  sync.Mutex
	holding bool
	held    []*Conn // connections whose writers wait for Flush, in order
	spare   []*Conn // the owner's copy of held, reused
}

// Hold makes the writers of this socket's connections wait for Flush:
// messages sent meanwhile are queued but wake no writer. An owner calls
// it before handling a batch and Flush after, so that each connection
// it replies to is woken once per batch, after all its replies are
// queued, instead of at its first reply (when the writer may run at once
// on another CPU and write that one alone). Only the owner may call Hold
// and Flush, in pairs.
func (s *Socket) Hold() {
	s.holdMu.Lock()
	s.holding = true
	s.holdMu.Unlock()
}

// Flush wakes the writers held since Hold. They are woken in reverse
// order, because Go's scheduler runs the goroutine readied last first:
// the connection sent to first is written first (in zpipes, a chunk's
// reader before its writer's OK).
func (s *Socket) Flush() {
	s.holdMu.Lock()
	held := s.held
	s.held, s.spare = s.spare[:0], nil
	s.holding = false
	s.holdMu.Unlock()
	for i := len(held) - 1; i >= 0; i-- {
		signal(held[i].wakeWriter)
	}
	clear(held)
	s.spare = held[:0]
}

// hold reports whether c's writer is to be woken by Flush, and if so
// notes it.
func (s *Socket) hold(c *Conn) bool {
	s.holdMu.Lock()
	defer s.holdMu.Unlock()
	if !s.holding {
		return false
	}
	s.held = append(s.held, c)
	return true
}

// Listen binds endpoint ("ipc://@name", "ipc:///path", "tcp://host:port")
// and starts accepting peers.
func Listen(endpoint string, opts Options) (*Socket, error) {
	opts = opts.withDefaults()
	if !validSocketType(opts.SocketType) {
		return nil, fmt.Errorf("zmtp: unknown socket type %q", opts.SocketType)
	}
	if opts.Guard == nil {
		opts.Guard = NewGuard(GuardConfig{Logger: opts.Logger})
	}
	// The greetings and READY are a message in progress too.
	if t := opts.Guard.cfg.MessageTimeout; t > 0 && t < opts.HandshakeTimeout {
		opts.HandshakeTimeout = t
	}
	l, err := listen(endpoint)
	if err != nil {
		return nil, err
	}
	s := &Socket{
		opts:     opts,
		l:        l,
		endpoint: endpointOf(l),
		events:   make(chan *Batch, opts.EventBuffer),
		done:     make(chan struct{}),
		conns:    map[*Conn]struct{}{},
		pending:  map[net.Conn]struct{}{},
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// Endpoint is the bound endpoint, with the real port for "tcp://...:0".
func (s *Socket) Endpoint() string { return s.endpoint }

// Events delivers every peer's events in batches, each of one
// connection (see Batch). It is closed after Close. Release every batch
// once handled: a connection reads at most maxUnreleased batches ahead of
// the releases. The usual loop:
//
//	for b := range sock.Events() {
//		for _, ev := range b.Events {
//			handle(ev)
//		}
//		b.Release()
//	}
func (s *Socket) Events() <-chan *Batch { return s.events }

func (s *Socket) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, don't spin.
			s.opts.Logger.Warn("accept failed", "endpoint", s.endpoint, "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		// Who the peer is decides whether it gets a goroutine, a buffer
		// or a byte of ours at all.
		peer, ok := s.opts.Guard.admit(nc, s.endpoint)
		if !ok {
			nc.Close()
			continue
		}
		s.wg.Add(1)
		// IDs in accept order: "oldest first" means what it says even
		// when handshakes finish out of order.
		go s.serve(connIDs.Add(1), nc, peer)
	}
}

func (s *Socket) serve(id uint64, nc net.Conn, peer Peer) {
	defer s.wg.Done()
	// The slot admit counted goes back here if the connection never
	// starts; a started one gives it back itself before its Disconnected
	// event, so whoever sees that event finds the slot free.
	started := false
	defer func() {
		if !started {
			s.opts.Guard.release(peer)
		}
	}()
	// Close closes peers still in their handshake rather than waiting up
	// to HandshakeTimeout for them.
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.pending[nc] = struct{}{}
	s.mu.Unlock()
	br := bufio.NewReaderSize(nc, handshakeBufferSize)
	hs, err := handshake(nc, br, &s.opts, true)
	s.mu.Lock()
	delete(s.pending, nc)
	s.mu.Unlock()
	if err != nil {
		s.opts.Logger.Info("peer refused in handshake", withClientKey(hs.mech.peerKey, "endpoint", s.endpoint, "peer", peer, "err", err)...)
		nc.Close()
		return
	}
	c := newConn(id, nc, br, &s.opts, hs, s.events, s.done)
	c.peer = peer
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	c.admitted, started = true, true
	c.sock = s
	// Debug, not Info: a broker serving many short connections would
	// flood its log; refusals, the lines that matter, are Warn/Info.
	s.opts.Logger.Debug("peer connected", withClientKey(c.peerKey, "endpoint", s.endpoint, "conn", c.id, "peer", peer, "socket_type", hs.peerType)...)
	c.start(true)
	<-c.readerDone
	s.opts.Logger.Debug("peer disconnected", "endpoint", s.endpoint, "conn", c.id, "peer", peer, "err", c.err)
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Close stops accepting and closes every connection, giving each a short
// linger to flush what is queued. No events are delivered after Close
// starts; the event channel is closed once every goroutine has ended.
func (s *Socket) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	for nc := range s.pending {
		nc.Close()
	}
	s.mu.Unlock()
	err := s.l.Close()
	for _, c := range conns {
		c.Close()
	}
	close(s.done) // no more events: the owner is shutting down
	s.wg.Wait()   // each connection flushes within its linger
	close(s.events)
	return err
}

// Dial connects to a listening peer and returns the connection; read its
// messages with Recv. There is no automatic reconnection: callers decide
// what a lost connection means for them.
func Dial(ctx context.Context, endpoint string, opts Options) (*Conn, error) {
	opts = opts.withDefaults()
	if !validSocketType(opts.SocketType) {
		return nil, fmt.Errorf("zmtp: unknown socket type %q", opts.SocketType)
	}
	nc, err := dial(ctx, endpoint)
	if err != nil {
		return nil, err
	}
	peer, err := checkBroker(nc, endpoint, opts.BrokerUID)
	if err != nil {
		nc.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(nc, handshakeBufferSize)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < opts.HandshakeTimeout {
		opts.HandshakeTimeout = time.Until(dl)
	}
	hs, err := handshake(nc, br, &opts, false)
	if err != nil {
		nc.Close()
		return nil, err
	}
	events := make(chan *Batch, opts.EventBuffer)
	if opts.Guard == nil {
		opts.Guard = &unguarded
	}
	c := newConn(connIDs.Add(1), nc, br, &opts, hs, events, nil)
	c.peer = peer
	c.dialed = true
	c.userClosed = make(chan struct{})
	c.done = c.userClosed // after Close nobody will Recv
	c.own = events
	c.start(false)
	return c, nil
}

// Recv returns the next message from a dialed connection. After the
// connection ends it returns why (io.EOF if the peer closed it, ErrClosed
// after Close). Recv is for one goroutine at a time.
func (c *Conn) Recv() ([][]byte, error) {
	for {
		if b := c.recvB; b != nil {
			for c.recvAt < len(b.Events) {
				ev := b.Events[c.recvAt]
				c.recvAt++
				if ev.Type == Message {
					return ev.Frames, nil
				}
			}
			c.recvB = nil
			b.Release()
		}
		select {
		case c.recvB = <-c.own:
		case <-c.readerDone:
			select {
			case c.recvB = <-c.own:
			default:
				return nil, c.err
			}
		}
		c.recvAt = 0
	}
}

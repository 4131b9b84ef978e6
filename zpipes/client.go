package zpipes

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/zbroker/zbroker/zmtp"
)

// Errors returned by the Client besides *BrokerError. Test for them with
// errors.Is: they are usually wrapped with details.
var (
	// ErrNoBroker is returned by Dial and DialEndpoint when nothing
	// listens on the endpoint (the broker is not running).
	ErrNoBroker = errors.New("zpipes: no broker listening")
	// ErrClosed is returned by every call after Disconnect, and by calls
	// that were waiting for a reply when Disconnect was called.
	ErrClosed = errors.New("zpipes: client disconnected")
	// ErrConnectionLost is returned, wrapping the cause, when the
	// connection to the broker ended without Disconnect (the broker
	// stopped or crashed, or dropped the connection). Every command
	// waiting for a reply fails with it, as does every later call: the
	// Client does not reconnect. Whether the commands that were in flight
	// took effect is unknown.
	ErrConnectionLost = errors.New("zpipes: connection to broker lost")
	// ErrProtocol is returned, wrapping details, when the broker's reply
	// does not fit the command it answers. Replies could no longer be
	// matched to commands, so the Client disconnects and every later call
	// fails with it.
	ErrProtocol = errors.New("zpipes: protocol error")
)

// BrokerError is the broker's refusal of a command: its two-frame
// [ERROR, reason] reply. Commands are refused for a missing or too long
// pipe name, for READ, WRITE or CLOSE on a pipe this connection has not
// opened, and for READ on a pipe that already has another reader. A
// BrokerError leaves the Client usable.
type BrokerError struct {
	Command string // "OPEN", "CLOSE", "READ", "WRITE" or "ACK"
	Pipe    string
	Reason  string // the broker's reason, e.g. "pipe not open on this connection"
}

// Error reads "zpipes: broker refused COMMAND "pipe": reason".
func (e *BrokerError) Error() string {
	return fmt.Sprintf("zpipes: broker refused %s %q: %s", e.Command, e.Pipe, e.Reason)
}

// Option configures Dial and DialEndpoint.
type Option func(*dialConfig)

type dialConfig struct {
	maxChunk  int64
	heartbeat time.Duration
	brokerUID int
	curve     *zmtp.CurveOptions
}

// WithMaxChunkSize sets the largest chunk a Read may return: a larger
// reply ends the connection with ErrConnectionLost, before it is read into
// memory. The limit applies to whole replies, with 1 KiB of slack for
// error replies. The default, 256 MiB, matches the broker's default limit
// on chunks.
func WithMaxChunkSize(n int64) Option {
	return func(c *dialConfig) { c.maxChunk = n }
}

// WithHeartbeat makes the Client PING the broker when the connection is
// idle for interval and treat it as lost when nothing arrives for three
// intervals. Off by default: on the abstract IPC endpoints zpipes uses, a
// broker that exits is noticed at once without heartbeats; they help when
// the broker is reached over TCP.
func WithHeartbeat(interval time.Duration) Option {
	return func(c *dialConfig) { c.heartbeat = interval }
}

// WithBrokerUID trusts a broker running as uid (root is always trusted).
// By default an ipc endpoint served by any uid but ours or root is
// refused (its error satisfies errors.As(err, **zmtp.UntrustedBrokerError)):
// it may be another user's process that took the broker's name.
func WithBrokerUID(uid int) Option {
	return func(c *dialConfig) { c.brokerUID = uid }
}

// WithCurve connects to a tcp endpoint with CURVE (docs/curve.md): the
// broker's public key in o.ServerKey and our key pair. It is not used on
// ipc, where the broker speaks NULL.
func WithCurve(o *zmtp.CurveOptions) Option {
	return func(c *dialConfig) { c.curve = o }
}

// Client is one DEALER connection to a zpipes broker. Its methods are safe
// for concurrent use. Commands are sent in the order the calls are made and
// the broker answers them in that order; a single goroutine receives the
// replies and hands each to the oldest command still waiting for one.
//
// Because replies come strictly in order, a READ waiting in the broker for
// a chunk holds back the replies to every later command on the same Client
// (their effects happen at once, only the answers wait). Use one Client for
// reading and another for everything else when reads may wait for long.
//
// The broker ties opened pipes and the reader role to the connection: when
// the Client disconnects, its pipes are closed. Chunks already written stay
// in the pipe for the next reader.
type Client struct {
	conn     *zmtp.Conn
	endpoint string
	recvDone chan struct{}

	mu      sync.Mutex
	queue   []*Pending // sent commands awaiting their reply, oldest first
	seq     uint64
	orphans map[string][]*Pending // READs abandoned by Read, by pipe, oldest first
	err     error                 // once set, the Client is finished
	closing bool                  // Disconnect was called
}

// Dial connects to the broker named brokerName on this machine, i.e. to
// zpipes.Endpoint(brokerName) = "ipc://@/zpipes/NAME". ctx bounds the
// connection and handshake only. If no broker of that name is running, the
// error satisfies errors.Is(err, ErrNoBroker).
func Dial(ctx context.Context, brokerName string, opts ...Option) (*Client, error) {
	return DialEndpoint(ctx, Endpoint(brokerName), opts...)
}

// DialEndpoint is Dial for an explicit ZeroMQ endpoint, e.g.
// "ipc://@/zpipes/default" or "tcp://127.0.0.1:5555".
func DialEndpoint(ctx context.Context, endpoint string, opts ...Option) (*Client, error) {
	cfg := dialConfig{maxChunk: 256 << 20}
	for _, o := range opts {
		o(&cfg)
	}
	conn, err := zmtp.Dial(ctx, endpoint, zmtp.Options{
		SocketType:     "DEALER",
		MaxMessageSize: cfg.maxChunk + 1024,
		// The transport stops reading a peer while its own send queue is
		// over these bounds. For a client that means no replies are read
		// while many commands wait to be sent; the broker in turn stops
		// reading our commands while over 64 MiB of its replies to us are
		// unread, and neither side moves again (TestManyAsyncWithoutWindow).
		// So the Client always reads; callers bound what they queue
		// (Pipeline, Writer).
		SendQueueMessages: math.MaxInt,
		SendQueueBytes:    math.MaxInt64,
		HeartbeatInterval: cfg.heartbeat,
		BrokerUID:         cfg.brokerUID,
		Curve:             cfg.curve.ForEndpoint(endpoint),
	})
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("%w at %s: %w", ErrNoBroker, endpoint, err)
		}
		return nil, fmt.Errorf("zpipes: connect to %s: %w", endpoint, err)
	}
	c := &Client{
		conn:     conn,
		endpoint: endpoint,
		recvDone: make(chan struct{}),
		orphans:  map[string][]*Pending{},
	}
	go c.recvLoop()
	return c, nil
}

// Endpoint is the broker endpoint the Client is connected to.
func (c *Client) Endpoint() string { return c.endpoint }

// Disconnect closes the connection. Commands still waiting for a reply
// fail with ErrClosed, and so does every later call; whether the commands
// in flight took effect is unknown, so wait for their replies (e.g.
// Writer.Close, Pipeline.Flush) before disconnecting. The broker closes
// every pipe the Client had open; chunks already in pipes stay there, and
// chunks held for abandoned Reads (see Read) are lost. Disconnect is
// idempotent and always returns nil.
func (c *Client) Disconnect() error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.conn.Close()
	<-c.recvDone
	c.mu.Lock()
	c.err = ErrClosed // even if the connection was lost before
	c.mu.Unlock()
	return nil
}

// Err returns nil while the Client is usable, and otherwise why it is not
// (wrapping ErrClosed, ErrConnectionLost or ErrProtocol).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Open opens pipe on this connection, creating it if needed, for reading,
// writing or both. A pipe must be opened before Read, Write or Close;
// opening it again is harmless. Pipe names are non-empty byte strings of
// at most 255 bytes.
//
// If ctx ends first, Open returns ctx.Err(); the OPEN still takes effect
// and its reply is discarded. This holds for every synchronous method.
func (c *Client) Open(ctx context.Context, pipe string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := c.OpenAsync(pipe).Wait(ctx)
	return err
}

// Close closes pipe on this connection. If this connection is the pipe's
// reader, the reader role is released and READs of this Client still
// waiting on the pipe are answered with a *BrokerError. Reads abandoned
// earlier on this pipe (see Read) are discarded, with any chunk they got.
// A pipe with no connection holding it open and no chunks is released by
// the broker.
func (c *Client) Close(ctx context.Context, pipe string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := c.CloseAsync(pipe).Wait(ctx)
	return err
}

// Write appends chunk to pipe, which must be open on this connection, and
// returns once the broker has accepted it. Chunks are opaque: any bytes,
// empty or large (up to the broker's maximum, 256 MiB by default; a client
// sending more is disconnected). While the pipe or the broker is over its
// memory limit the broker withholds the reply, so Write blocks until a
// reader drains the pipe: this is the protocol's backpressure.
//
// The Client keeps a reference to chunk until the broker replies. If ctx
// ends first, Write returns ctx.Err() while the WRITE may still be queued
// for sending and may still be carried out: do not modify chunk then.
func (c *Client) Write(ctx context.Context, pipe string, chunk []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := c.WriteAsync(pipe, chunk).Wait(ctx)
	return err
}

// Read returns the next chunk of pipe, which must be open on this
// connection, waiting until a chunk is there. The first connection to read
// a pipe becomes its only reader until it closes the pipe or disconnects;
// Read from another connection fails with a *BrokerError.
//
// Cancellation: if ctx ends before the chunk arrives, Read returns
// ctx.Err(), but the READ cannot be withdrawn: it stays waiting in the
// broker and will still take a chunk out of the pipe. To keep replies
// matched to commands, the Client receives that reply anyway. It keeps the
// abandoned READ, and the next Read (or ReadAsync) of the same pipe on this
// Client takes it over instead of sending a new READ, so no chunk is lost
// and chunks keep their order as long as the pipe is read again. The chunk
// is lost (removed from the pipe and dropped) if the pipe is closed with
// Close or the Client disconnected before that. Meanwhile the waiting READ
// holds back the replies to all later commands on this Client (see
// Client); Close(ctx, pipe) ends the wait, as the broker then answers it
// with an error.
func (c *Client) Read(ctx context.Context, pipe string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := c.ReadAsync(pipe)
	chunk, err := p.Wait(ctx)
	if err != nil && !p.isDone() {
		// Only ctx can end Wait before p is done.
		c.abandon(p)
	} else if err != nil {
		chunk, err = p.chunk, p.err // the reply won the race with ctx
	}
	return chunk, err
}

// OpenAsync sends OPEN and returns at once; see Open.
func (c *Client) OpenAsync(pipe string) *Pending {
	return c.send(CmdOpen, pipe, nil)
}

// OpenAck opens pipe like Open, for an acknowledging reader (the
// extension OPEN / pipe / ACK, see docs/zpipes.md): every chunk this
// Client then reads from pipe stays its own until it acknowledges it with
// Ack. If the Client closes the pipe or disconnects (or its process
// dies) first, the broker gives the unacknowledged chunks back to the
// head of the pipe, in order, for the next reader.
//
// A broker without the extension refuses it with a *BrokerError; on a
// connection that has not opened pipe yet, that error means exactly this,
// and Open is the fallback. Opening a pipe open already in the other mode
// is refused too (Close it first).
func (c *Client) OpenAck(ctx context.Context, pipe string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := c.OpenAckAsync(pipe).Wait(ctx)
	return err
}

// OpenAckAsync sends OPEN / pipe / ACK and returns at once; see OpenAck.
func (c *Client) OpenAckAsync(pipe string) *Pending {
	return c.send(CmdOpen, pipe, []byte(ArgAck))
}

// Ack acknowledges the oldest n chunks this Client has read from pipe
// (opened with OpenAck) and not acknowledged yet: the broker drops them
// for good. Acknowledge a chunk only once you are done with it (written
// it out, committed it): until then it is safe from your process dying.
// Acknowledging more than it holds is refused with a *BrokerError and
// changes nothing.
//
// The broker holds at most a bound of unacknowledged chunks per reader
// (its --max-unacked, default 10000); past it, Reads wait until Ack.
// Replies come in command order, so Ack waits for the replies of the
// READs sent before it: with ReadAsync pipelined past the bound, use
// AckAsync and do not wait for it before acknowledging more.
func (c *Client) Ack(ctx context.Context, pipe string, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := c.AckAsync(pipe, n).Wait(ctx)
	return err
}

// AckAsync sends ACK and returns at once; see Ack.
func (c *Client) AckAsync(pipe string, n int) *Pending {
	return c.send(CmdAck, pipe, strconv.AppendInt(nil, int64(n), 10))
}

// CloseAsync sends CLOSE and returns at once; see Close.
func (c *Client) CloseAsync(pipe string) *Pending {
	return c.send(CmdClose, pipe, nil)
}

// WriteAsync sends WRITE and returns at once, without waiting for the
// broker's reply; see Write. Use it, or a Pipeline, to keep many WRITEs in
// flight. The Client keeps a reference to chunk until the Pending is done:
// do not modify chunk before that.
//
// Sending never blocks, so the caller must bound how many commands it
// keeps in flight (e.g. with a Pipeline): under backpressure the broker
// stops reading this connection's commands, and unsent ones queue up in
// this process's memory.
func (c *Client) WriteAsync(pipe string, chunk []byte) *Pending {
	if chunk == nil {
		chunk = []byte{}
	}
	return c.send(CmdWrite, pipe, chunk)
}

// ReadAsync sends READ and returns at once; the Pending yields the chunk.
// READs may be pipelined: each takes the next chunk, in order. But every
// READ sent takes a chunk out of the pipe once one is there, even if its
// result is never used, so send only as many as you will consume. If an
// earlier Read of this pipe was abandoned (see Read), ReadAsync returns
// that READ's Pending instead of sending a new one.
func (c *Client) ReadAsync(pipe string) *Pending {
	c.mu.Lock()
	for len(c.orphans[pipe]) > 0 {
		p := c.orphans[pipe][0]
		c.orphans[pipe] = c.orphans[pipe][1:]
		if len(c.orphans[pipe]) == 0 {
			delete(c.orphans, pipe)
		}
		// A READ that failed took no chunk: a fresh one tells the
		// current state better.
		if p.isDone() && p.err != nil {
			continue
		}
		c.mu.Unlock()
		return p
	}
	c.mu.Unlock()
	return c.send(CmdRead, pipe, nil)
}

// abandon keeps a READ that Read gave up on, for the pipe's next Read.
func (c *Client) abandon(p *Pending) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	list := append(c.orphans[p.pipe], p)
	sort.Slice(list, func(i, j int) bool { return list[i].seq < list[j].seq })
	c.orphans[p.pipe] = list
}

// send sends cmd / pipe, and third as a third frame if not nil (WRITE's
// chunk, ACK's count, OPEN's ACK flag).
func (c *Client) send(cmd, pipe string, third []byte) *Pending {
	p := &Pending{cmd: cmd, pipe: pipe, done: make(chan struct{})}
	frames := [][]byte{[]byte(cmd), []byte(pipe)}
	if third != nil {
		frames = append(frames, third)
	}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		p.complete(nil, err)
		return p
	}
	if cmd == CmdClose {
		// READs sent before the CLOSE end with it; see Close.
		delete(c.orphans, pipe)
	}
	c.seq++
	p.seq = c.seq
	c.queue = append(c.queue, p)
	if err := c.conn.Send(frames); err != nil {
		// The connection has ended; recvLoop is about to report why.
		c.queue[len(c.queue)-1] = nil
		c.queue = c.queue[:len(c.queue)-1]
		c.mu.Unlock()
		p.complete(nil, c.lostErr(err))
		return p
	}
	c.mu.Unlock()
	return p
}

func (c *Client) lostErr(cause error) error {
	c.mu.Lock()
	closing := c.closing
	c.mu.Unlock()
	if closing {
		return ErrClosed
	}
	return fmt.Errorf("%w (%w)", ErrConnectionLost, cause)
}

func (c *Client) recvLoop() {
	defer close(c.recvDone)
	for {
		frames, err := c.conn.Recv()
		if err != nil {
			c.fail(c.lostErr(err))
			return
		}
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.mu.Unlock()
			c.fail(fmt.Errorf("%w: reply of %d frames with no command waiting for one", ErrProtocol, len(frames)))
			c.conn.Close()
			return
		}
		p := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		c.mu.Unlock()
		if err := p.resolve(frames); err != nil {
			c.fail(err)
			c.conn.Close()
			return
		}
	}
}

// fail finishes the Client with err and fails every command in flight.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	err = c.err
	queue := c.queue
	c.queue = nil
	c.orphans = map[string][]*Pending{}
	c.mu.Unlock()
	for _, p := range queue {
		p.complete(nil, err)
	}
}

// Pending is a command sent by one of the Async methods, and then its
// reply. It is safe for concurrent use.
type Pending struct {
	cmd  string
	pipe string
	seq  uint64
	done chan struct{}
	// set before done is closed
	chunk []byte
	err   error
}

// Done is closed once the reply has arrived or the command has failed.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Wait waits for the reply and returns the chunk for a READ (nil for other
// commands) or the error: a *BrokerError if the broker refused the
// command, or an error wrapping ErrClosed, ErrConnectionLost or
// ErrProtocol. If ctx ends first, Wait returns ctx.Err() and the command
// stays in flight: its reply is still received, and Wait may be called
// again.
func (p *Pending) Wait(ctx context.Context) ([]byte, error) {
	select {
	case <-p.done:
		return p.chunk, p.err
	default:
	}
	select {
	case <-p.done:
		return p.chunk, p.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *Pending) isDone() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *Pending) complete(chunk []byte, err error) {
	p.chunk, p.err = chunk, err
	close(p.done)
}

// resolve completes p with its reply. An error means the reply does not
// fit the command, so the stream can no longer be trusted.
func (p *Pending) resolve(frames [][]byte) error {
	switch {
	case len(frames) == 2 && string(frames[0]) == ReplyError:
		p.complete(nil, &BrokerError{Command: p.cmd, Pipe: p.pipe, Reason: string(frames[1])})
		return nil
	case len(frames) == 1 && p.cmd == CmdRead:
		p.complete(frames[0], nil)
		return nil
	case len(frames) == 1 && string(frames[0]) == ReplyOK:
		p.complete(nil, nil)
		return nil
	}
	err := fmt.Errorf("%w: unexpected reply to %s %q: %d frames %.40q", ErrProtocol, p.cmd, p.pipe, len(frames), frames)
	p.complete(nil, err)
	return err
}

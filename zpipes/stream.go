package zpipes

import (
	"context"
	"errors"
	"io"
)

// DefaultWindow is how many WRITEs a Writer keeps in flight unless told
// otherwise with WithWindow.
const DefaultWindow = 64

// Pipeline bounds how many commands are in flight and collects their
// replies in order, remembering the first error. Add commands made with
// the Async methods of a Client:
//
//	pl := zpipes.NewPipeline(256)
//	for _, chunk := range chunks {
//		if err := pl.Add(ctx, c.WriteAsync("logs", chunk)); err != nil {
//			return err
//		}
//	}
//	return pl.Flush(ctx)
//
// A Pipeline is meant for commands answered by OK (OPEN, CLOSE, WRITE):
// the chunks READs return are dropped. It is not safe for concurrent use.
type Pipeline struct {
	window   int
	inflight []*Pending
	err      error
}

// NewPipeline returns a Pipeline that keeps at most window commands in
// flight (at least 1).
func NewPipeline(window int) *Pipeline {
	return &Pipeline{window: max(window, 1)}
}

// Add adds a command just sent, then waits for the replies of the oldest
// ones until at most the window is in flight. It returns the first error
// any command of the Pipeline has had so far (a *BrokerError, or one of
// the Client's errors), or ctx.Err() if ctx ended while waiting; the
// commands stay in the Pipeline either way.
func (pl *Pipeline) Add(ctx context.Context, p *Pending) error {
	pl.inflight = append(pl.inflight, p)
	for len(pl.inflight) > 0 && pl.inflight[0].isDone() {
		pl.pop()
	}
	for len(pl.inflight) > pl.window {
		if err := pl.waitOldest(ctx); err != nil {
			return err
		}
	}
	return pl.err
}

// Flush waits for the replies of all commands in flight and returns the
// first error any command of the Pipeline has had, or ctx.Err() if ctx
// ended first.
func (pl *Pipeline) Flush(ctx context.Context) error {
	for len(pl.inflight) > 0 {
		if err := pl.waitOldest(ctx); err != nil {
			return err
		}
	}
	return pl.err
}

// Err returns the first error any command of the Pipeline has had so far.
func (pl *Pipeline) Err() error { return pl.err }

// Len is the number of commands in flight.
func (pl *Pipeline) Len() int { return len(pl.inflight) }

func (pl *Pipeline) waitOldest(ctx context.Context) error {
	p := pl.inflight[0]
	select {
	case <-p.Done():
	case <-ctx.Done():
		return ctx.Err()
	}
	pl.pop()
	return nil
}

func (pl *Pipeline) pop() {
	p := pl.inflight[0]
	pl.inflight[0] = nil
	pl.inflight = pl.inflight[1:]
	if p.err != nil && pl.err == nil {
		pl.err = p.err
	}
}

// StreamOption configures a Writer or a Reader.
type StreamOption func(*streamConfig)

type streamConfig struct {
	ctx    context.Context
	window int
	eos    bool
	ack    bool
}

func newStreamConfig(opts []StreamOption) streamConfig {
	cfg := streamConfig{ctx: context.Background(), window: DefaultWindow}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// WithContext bounds every command the Writer or Reader makes: once ctx
// ends, their methods return ctx.Err(). The default is
// context.Background(). See Client.Read for what a cancelled READ means.
func WithContext(ctx context.Context) StreamOption {
	return func(c *streamConfig) { c.ctx = ctx }
}

// WithWindow sets how many WRITEs a Writer keeps in flight: when Write
// returns, at most n chunks await the broker's OK (default DefaultWindow).
// Flush waits for all of them. A Reader ignores the window: it never reads
// ahead, since each READ takes a chunk out of the pipe.
func WithWindow(n int) StreamOption {
	return func(c *streamConfig) { c.window = max(n, 1) }
}

// WithEOS turns on the end-of-stream convention shared with the zpipe
// command: an empty chunk marks the end of a stream. A Writer sends one in
// Close (its Write never sends empty chunks); a Reader returns io.EOF when
// it reads one. Pipes themselves have no end; without WithEOS a Reader
// skips empty chunks and never returns io.EOF.
func WithEOS() StreamOption {
	return func(c *streamConfig) { c.eos = true }
}

// WithAck makes a Reader an acknowledging reader (Client.OpenAck): it
// acknowledges a chunk once it has returned all of its bytes and is asked
// for more (or reaches the end of stream, or is closed), so a chunk it was
// still serving when the process died goes to the next reader. A Writer
// ignores it. The broker must support the extension: without it the
// Reader fails with the broker's *BrokerError (see Client.OpenAck).
func WithAck() StreamOption {
	return func(c *streamConfig) { c.ack = true }
}

// ErrStreamClosed is returned by the methods of a Writer or Reader after
// its Close.
var ErrStreamClosed = errors.New("zpipes: stream closed")

// Writer is an io.WriteCloser onto a pipe: each Write sends its whole
// argument as one chunk. It keeps a window of WRITEs in flight, so Write
// normally returns before the broker has acknowledged the chunk; an error
// reported for an earlier chunk is returned by a later Write, and Flush and
// Close wait for every acknowledgement and return the first error. Once a
// chunk has failed, the Writer stops sending.
//
// The Writer opens the pipe on its first Write and closes it in Close.
// The pipe's open state belongs to the connection, not the Writer, so do
// not close the same pipe on the same Client while the Writer is in use.
// A Writer is not safe for concurrent use.
type Writer struct {
	c      *Client
	pipe   string
	cfg    streamConfig
	pl     *Pipeline
	opened bool
	closed bool
	result error // Close's result
}

// NewWriter returns a Writer sending chunks to pipe over c. Nothing is
// sent until the first Write (or Close, with WithEOS).
func NewWriter(c *Client, pipe string, opts ...StreamOption) *Writer {
	cfg := newStreamConfig(opts)
	return &Writer{c: c, pipe: pipe, cfg: cfg, pl: NewPipeline(cfg.window)}
}

// Write sends p as one chunk (a copy: p may be reused at once) and returns
// len(p) once the chunk is sent and at most the window of chunks awaits
// acknowledgement. An empty p sends nothing. The error, if any, is the
// first error of any chunk so far (e.g. a *BrokerError, ErrConnectionLost)
// or the Writer's context's error.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, ErrStreamClosed
	}
	if err := w.pl.Err(); err != nil {
		return 0, err
	}
	if err := w.cfg.ctx.Err(); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := w.open(); err != nil {
		return 0, err
	}
	chunk := append([]byte(nil), p...)
	if err := w.pl.Add(w.cfg.ctx, w.c.WriteAsync(w.pipe, chunk)); err != nil {
		return len(p), err
	}
	return len(p), nil
}

func (w *Writer) open() error {
	if w.opened {
		return nil
	}
	w.opened = true
	return w.pl.Add(w.cfg.ctx, w.c.OpenAsync(w.pipe))
}

// Flush waits until the broker has acknowledged every chunk written so
// far and returns the first error of any chunk, or the context's error.
func (w *Writer) Flush() error {
	if w.closed {
		return ErrStreamClosed
	}
	return w.pl.Flush(w.cfg.ctx)
}

// Close waits for every chunk's acknowledgement, then sends the
// end-of-stream chunk (with WithEOS, and only if no chunk has failed and
// the context has not ended), closes the pipe on the connection, and
// returns the first error. The chunks stay in the pipe for its reader.
// Close does not disconnect the Client; calling it again returns the same
// result.
func (w *Writer) Close() error {
	if w.closed {
		return w.result
	}
	w.closed = true
	ctx := w.cfg.ctx
	if w.cfg.eos && w.pl.Flush(ctx) == nil {
		if w.open() == nil {
			w.pl.Add(ctx, w.c.WriteAsync(w.pipe, []byte{}))
		}
	}
	if w.opened {
		// Sent even if the context has ended; only waiting is bounded.
		w.pl.Add(ctx, w.c.CloseAsync(w.pipe))
	}
	w.result = w.pl.Flush(ctx)
	return w.result
}

// Abort ends the Writer like Close but never sends the end-of-stream
// chunk: use it when the data is incomplete (e.g. reading the source
// failed), so the reader does not take it for a complete stream. It waits
// for the chunks already written and returns the first error.
func (w *Writer) Abort() error {
	w.cfg.eos = false
	return w.Close()
}

// Reader is an io.ReadCloser onto a pipe: it reads chunks one at a time
// and serves their bytes as one stream, so chunk boundaries are not kept.
// It opens the pipe on its first Read and closes it in Close; the
// connection becomes the pipe's reader. It sends one READ at a time and
// never reads ahead, so it takes no chunk out of the pipe that it does not
// return (except after a cancellation, see Client.Read).
//
// Without WithEOS a pipe never ends and Read waits for more chunks
// forever; with WithEOS an empty chunk ends the stream with io.EOF. A
// Reader is not safe for concurrent use.
type Reader struct {
	c      *Client
	pipe   string
	cfg    streamConfig
	opened bool
	closed bool
	buf    []byte
	err    error // sticky: io.EOF or a failure
	// served counts the chunks returned in full and not yet
	// acknowledged (WithAck).
	served int
}

// NewReader returns a Reader reading pipe over c. Nothing is sent until
// the first Read.
func NewReader(c *Client, pipe string, opts ...StreamOption) *Reader {
	return &Reader{c: c, pipe: pipe, cfg: newStreamConfig(opts)}
}

// Read reads up to len(p) bytes, waiting for a chunk if none is buffered.
// It returns io.EOF at the end-of-stream chunk (with WithEOS) and
// otherwise the error of the READ (a *BrokerError, one of the Client's
// errors, or the context's error, which is not sticky).
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := r.fill(); err != nil {
		return 0, err
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	if len(r.buf) == 0 {
		r.served++ // returned in full: the next fill acknowledges it
	}
	return n, nil
}

// WriteTo writes the stream to dst chunk by chunk until the end of stream
// (with WithEOS, then it returns a nil error) or an error. io.Copy uses
// it.
func (r *Reader) WriteTo(dst io.Writer) (int64, error) {
	var total int64
	for {
		if err := r.fill(); err != nil {
			if err == io.EOF {
				err = nil
			}
			return total, err
		}
		n, err := dst.Write(r.buf)
		total += int64(n)
		r.buf = r.buf[n:]
		if err != nil {
			return total, err
		}
		r.served++ // dst has it all: the next fill acknowledges it
	}
}

// ackAsync sends an ACK of the chunks returned in full, if any.
func (r *Reader) ackAsync() *Pending {
	if !r.cfg.ack || r.served == 0 {
		return nil
	}
	p := r.c.AckAsync(r.pipe, r.served)
	r.served = 0
	return p
}

// ackWait acknowledges the chunks returned in full and waits for the OK.
func (r *Reader) ackWait() error {
	if p := r.ackAsync(); p != nil {
		_, err := p.Wait(r.cfg.ctx)
		return err
	}
	return nil
}

// fill makes sure r.buf is not empty, or says why it cannot be.
func (r *Reader) fill() error {
	if r.closed {
		return ErrStreamClosed
	}
	for len(r.buf) == 0 {
		if r.err != nil {
			return r.err
		}
		if !r.opened {
			r.opened = true
			open := r.c.OpenAsync
			if r.cfg.ack {
				open = r.c.OpenAckAsync
			}
			if _, err := open(r.pipe).Wait(r.cfg.ctx); err != nil {
				if r.cfg.ctx.Err() == nil {
					r.err = err
				}
				return err
			}
		}
		// The ACK goes with the READ: its reply comes first, so it is
		// in by the time the chunk is.
		acked := r.ackAsync()
		chunk, err := r.c.Read(r.cfg.ctx, r.pipe)
		if err == nil && acked != nil && acked.isDone() && acked.err != nil {
			err = acked.err
		}
		switch {
		case err != nil && r.cfg.ctx.Err() != nil:
			return err
		case err != nil:
			r.err = err
		case len(chunk) == 0 && r.cfg.eos:
			r.served++ // the end-of-stream mark is consumed here
			r.err = io.EOF
			if err := r.ackWait(); err != nil {
				r.err = err
			}
		case len(chunk) == 0:
			r.served++ // skipped
		default:
			r.buf = chunk
		}
	}
	return nil
}

// Close closes the pipe on the connection, giving up the reader role, and
// discards buffered bytes. A READ abandoned on cancellation is answered
// with an error by the broker, or its chunk is lost (see Client.Read).
// Close does not disconnect the Client.
func (r *Reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.buf = nil // a chunk returned in part is not acknowledged: it goes back
	if !r.opened {
		return nil
	}
	acked := r.ackAsync()
	// Sent even if the context has ended: it releases the reader role
	// and any READ still waiting. Only waiting for the reply is bounded.
	_, err := r.c.CloseAsync(r.pipe).Wait(r.cfg.ctx)
	if acked != nil && acked.isDone() && acked.err != nil && err == nil {
		err = acked.err
	}
	return err
}

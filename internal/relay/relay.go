// Package relay is a bare relay: it speaks the zpipes seed protocol on the
// zmtp transport with no pipe logic beyond the minimum, so it is the
// ceiling for any broker in the middle. cmd/zpipes-bench measures zpipes
// against it.
//
// OPEN and CLOSE are answered "OK" without bookkeeping. WRITE is answered
// "OK" and its chunk goes straight to the oldest READ waiting on the pipe,
// or into the pipe's FIFO. READ takes the next chunk or waits. There is no
// fairness between writers, no memory limit, no reply ordering (replies go
// out as soon as they exist) and no validation beyond what keeps the relay
// from crashing: an unknown or short command gets the two-frame ERROR
// reply. A chunk handed to a reader that has gone is put back in front;
// one already queued on its socket when it went is lost.
package relay

import (
	"github.com/zbroker/zbroker/internal/deque"
	"io"
	"log/slog"

	"github.com/zbroker/zbroker/zmtp"
)

// Relay is a running bare relay. One goroutine owns all state, fed by the
// socket's events, like the zpipes broker.
type Relay struct {
	sock    *zmtp.Socket
	pipes   map[string]*pipe
	stopped chan struct{}
}

type pipe struct {
	chunks  deque.Deque[[][]byte] // a queued chunk, as the one-frame reply carrying it
	waiting deque.Deque[waiter]   // READs waiting for a chunk, oldest first
}

type waiter struct {
	conn *zmtp.Conn
	env  [][]byte // the READ's envelope (a lone empty delimiter), if any
}

var (
	okReply = [][]byte{[]byte("OK")}
	errWord = []byte("ERROR")
	badCmd  = [][]byte{errWord, []byte("bad command")}
)

// Start binds endpoint (e.g. "ipc://@/zpipes/relay") and starts relaying.
func Start(endpoint string) (*Relay, error) {
	sock, err := zmtp.Listen(endpoint, zmtp.Options{
		SocketType: "ROUTER",
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return nil, err
	}
	r := &Relay{sock: sock, pipes: map[string]*pipe{}, stopped: make(chan struct{})}
	go r.run()
	return r, nil
}

// Endpoint is where the relay listens.
func (r *Relay) Endpoint() string { return r.sock.Endpoint() }

// Close stops the relay; queued chunks are dropped.
func (r *Relay) Close() {
	r.sock.Close()
	<-r.stopped
}

func (r *Relay) run() {
	defer close(r.stopped)
	for batch := range r.sock.Events() {
		r.sock.Hold() // as zpipes does: one wake-up per writer and batch
		for _, ev := range batch.Events {
			if ev.Type == zmtp.Message {
				r.handle(ev.Conn, ev.Frames)
			}
		}
		batch.Release()
		r.sock.Flush()
	}
}

func (r *Relay) handle(c *zmtp.Conn, frames [][]byte) {
	// A REQ peer's (or a polite DEALER's) lone empty delimiter is echoed.
	var env [][]byte
	if len(frames) > 0 && len(frames[0]) == 0 {
		env, frames = frames[:1], frames[1:]
	}
	if len(frames) < 2 {
		reply(c, env, badCmd)
		return
	}
	switch string(frames[0]) {
	case "OPEN":
		reply(c, env, okReply)
	case "CLOSE":
		if p := r.pipes[string(frames[1])]; p != nil && p.chunks.Len() == 0 && p.waiting.Len() == 0 {
			delete(r.pipes, string(frames[1]))
		}
		reply(c, env, okReply)
	case "WRITE":
		if len(frames) < 3 {
			reply(c, env, badCmd)
			return
		}
		// The chunk first, as zpipes does: its reader is woken first.
		r.pipeOf(frames[1]).put(frames[2:3])
		reply(c, env, okReply)
	case "READ":
		p := r.pipeOf(frames[1])
		if p.chunks.Len() == 0 {
			p.waiting.PushBack(waiter{conn: c, env: env})
			return
		}
		if chunk := p.chunks.PopFront(); reply(c, env, chunk) != nil {
			p.chunks.PushFront(chunk) // the reader is gone
		}
	default:
		reply(c, env, badCmd)
	}
}

func (r *Relay) pipeOf(name []byte) *pipe {
	p := r.pipes[string(name)]
	if p == nil {
		p = &pipe{}
		r.pipes[string(name)] = p
	}
	return p
}

// put hands a chunk to the oldest live waiting READ, or queues it.
func (p *pipe) put(chunk [][]byte) {
	for p.waiting.Len() > 0 {
		w := p.waiting.PopFront()
		if reply(w.conn, w.env, chunk) == nil {
			return
		}
	}
	p.chunks.PushBack(chunk)
}

func reply(c *zmtp.Conn, env, frames [][]byte) error {
	if len(env) > 0 {
		frames = append(env[:len(env):len(env)], frames...)
	}
	return c.Send(frames)
}

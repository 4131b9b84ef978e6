package cluster

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/zbroker/zbroker/internal/jsname"
	"github.com/zbroker/zbroker/internal/natsnode"
	"github.com/zbroker/zbroker/internal/natsnode/natstest"
	"github.com/zbroker/zbroker/zpipes"
)

// maxUnacked is what an acknowledging reader may hold: more than the
// read-ahead, so a reader holding that many needs the consumer to
// deliver beyond it.
const maxUnacked = 2 * prefetch

// pipeHost is one host's zpipes server on its JetStream node.
type pipeHost struct {
	store *PipeStore
	srv   *zpipes.Server
}

func startPipeHost(t *testing.T, n *natsnode.Node, pipeLimit int64) *pipeHost {
	t.Helper()
	return startPipeHostJS(t, n.JS, n.Replicas, pipeLimit)
}

// startPipeHostJS starts a host on js (a node's, or a wrapper of it).
func startPipeHostJS(t *testing.T, js jetstream.JetStream, replicas int, pipeLimit int64) *pipeHost {
	t.Helper()
	return startPipeHostConfig(t, js, PipeConfig{Replicas: replicas, PipeLimit: pipeLimit})
}

// startPipeHostConfig starts a host on js with the store's cfg (its
// MaxUnacked and Logger are the tests').
func startPipeHostConfig(t *testing.T, js jetstream.JetStream, cfg PipeConfig) *pipeHost {
	t.Helper()
	cfg.MaxUnacked, cfg.Logger = maxUnacked, testLog
	st := NewPipeStore(js, cfg)
	srv, err := zpipes.Start(zpipes.Options{
		Name:       fmt.Sprintf("zp-%d-%d", os.Getpid(), nameSeq.Add(1)),
		PipeLimit:  cfg.PipeLimit,
		MaxUnacked: maxUnacked,
		Store:      st,
		Logger:     testLog,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := &pipeHost{st, srv}
	t.Cleanup(func() { h.srv.Close() })
	return h
}

// writeChunks writes chunks 0 to n-1 into pipe, 200 in flight, and
// waits for their OKs.
func writeChunks(ctx context.Context, w *zpipes.Client, pipe string, n int) error {
	pl := zpipes.NewPipeline(200)
	for i := range n {
		if err := pl.Add(ctx, w.WriteAsync(pipe, chunk(i))); err != nil {
			return err
		}
	}
	return pl.Flush(ctx)
}

// dial connects to h's zpipes and opens pipe (as a writer or plain reader).
func dial(t *testing.T, h *pipeHost, pipe string) *zpipes.Client {
	t.Helper()
	return dialOpen(t, h, pipe, (*zpipes.Client).Open)
}

// dialAck connects to h's zpipes and opens pipe as an acknowledging reader.
func dialAck(t *testing.T, h *pipeHost, pipe string) *zpipes.Client {
	t.Helper()
	return dialOpen(t, h, pipe, (*zpipes.Client).OpenAck)
}

func dialOpen(t *testing.T, h *pipeHost, pipe string, open func(*zpipes.Client, context.Context, string) error) *zpipes.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := zpipes.DialEndpoint(ctx, h.srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect() })
	if err := open(c, ctx, pipe); err != nil {
		t.Fatal(err)
	}
	return c
}

// readChunks reads chunks from to to-1 of pipe, in order.
func readChunks(ctx context.Context, t *testing.T, r *zpipes.Client, pipe string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		got, err := r.Read(ctx, pipe)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if index(got) != i {
			t.Fatalf("read chunk %d, want %d", index(got), i)
		}
	}
}

func chunk(i int) []byte {
	b := make([]byte, 100)
	binary.BigEndian.PutUint64(b, uint64(i))
	return b
}

func index(b []byte) int { return int(binary.BigEndian.Uint64(b)) }

// A writer on host A, the reader on host C: every chunk arrives, in
// order, through a pipe whose stream limit (DiscardNew) holds the writer
// back; the reader leaves midway and a reader on host B continues exactly
// where it stopped.
func TestPipeAcrossHosts(t *testing.T) {
	c := natstest.Start(t, 3)
	const limit = 32 << 10 // a few hundred chunks: the writer is held back
	a, b, cc := startPipeHost(t, c.Nodes[0], limit), startPipeHost(t, c.Nodes[1], limit), startPipeHost(t, c.Nodes[2], limit)
	pipe := "jobs.* >\x00é"
	w := dial(t, a, pipe)
	const n = 1500
	ctx, cancel := context.WithTimeout(context.Background(), 2*testTimeout)
	defer cancel()
	writeErr := make(chan error, 1)
	go func() { writeErr <- writeChunks(ctx, w, pipe, n) }()

	r := dial(t, cc, pipe)
	readChunks(ctx, t, r, pipe, 0, 700)
	// A second reader, on another host, is refused as on one host.
	second := dial(t, b, pipe)
	if _, err := second.Read(ctx, pipe); err == nil || !strings.Contains(err.Error(), "already has a reader") {
		t.Fatalf("second reader on another host: %v, want the already-has-a-reader error", err)
	}
	second.Disconnect()
	if err := r.Disconnect(); err != nil {
		t.Fatal(err)
	}
	r2 := dial(t, b, pipe)
	readChunks(ctx, t, r2, pipe, 700, n)
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
	info, err := c.Nodes[0].JS.Stream(ctx, jsname.PipeStream([]byte(pipe)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.CachedInfo().Config
	if cfg.Discard != jetstream.DiscardNew || cfg.MaxBytes != limit || cfg.MaxMsgs > 0 || cfg.Replicas != 3 {
		t.Fatalf("stream config %+v", cfg)
	}
	// Many writers on replicated streams: atomic batches.
	testBatchedWriters(t, c.Nodes, "batched")
}

// An acknowledging reader holds more chunks unacknowledged than the
// read-ahead; those it leaves without acknowledging come back, in order,
// to the next reader; those it acknowledges never do.
func TestPipeAckReader(t *testing.T) {
	c := natstest.Start(t, 1)
	h := startPipeHost(t, c.Nodes[0], 1<<20)
	const pipe, n = "acked", 3000
	ctx, cancel := context.WithTimeout(context.Background(), 2*testTimeout)
	defer cancel()
	if err := writeChunks(ctx, dial(t, h, pipe), pipe, n); err != nil {
		t.Fatal(err)
	}
	r := dialAck(t, h, pipe)
	readChunks(ctx, t, r, pipe, 0, prefetch+500)
	r.Disconnect()
	waitClients(t, h, 1) // the host has seen the reader leave
	r = dialAck(t, h, pipe)
	readChunks(ctx, t, r, pipe, 0, prefetch+200)
	if err := r.Ack(ctx, pipe, prefetch+200); err != nil {
		t.Fatal(err)
	}
	r.Disconnect()
	waitClients(t, h, 1)
	readChunks(ctx, t, dialAck(t, h, pipe), pipe, prefetch+200, n)
}

// waitClients waits until h's broker has n client connections: a
// Disconnect returns before the broker has handled it, and a new reader
// whose READ comes first is refused as a second reader.
func waitClients(t *testing.T, h *pipeHost, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("the broker to have %d clients", n), func() bool { return h.srv.Stats().Clients == n })
}

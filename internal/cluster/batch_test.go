package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/zbroker/zbroker/internal/jsname"
	"github.com/zbroker/zbroker/internal/natsnode"
	"github.com/zbroker/zbroker/internal/natsnode/natstest"
	"github.com/zbroker/zbroker/zpipes"
)

// writerChunk is chunk i of writer w.
func writerChunk(w, i int) []byte {
	b := make([]byte, 100)
	b[0] = byte(w)
	binary.BigEndian.PutUint64(b[1:], uint64(i))
	return b
}

// Writers on two hosts pipeline into one pipe whose stream limit holds
// them back: their batches are refused as full and held, with the OKs
// withheld. Once the reader, on a third host, frees room, every chunk is
// read, each writer's in order, none twice.
func TestPipeBatchedWriters(t *testing.T) {
	c := natstest.Start(t, 1)
	testBatchedWriters(t, c.Nodes, "batched")
}

// testBatchedWriters runs the writers on the first two nodes' hosts and
// the reader on the last node's. On one node the stream takes fast
// batches, on three atomic ones (TestPipeAcrossHosts runs it there).
func testBatchedWriters(t *testing.T, nodes []*natsnode.Node, pipe string) {
	const limit = 16 << 10
	a := startPipeHost(t, nodes[0], limit)
	b := startPipeHost(t, nodes[1%len(nodes)], limit)
	r := startPipeHost(t, nodes[len(nodes)-1], limit)
	n := nodes[0]
	const writers, each = 6, 100
	ctx, cancel := context.WithTimeout(context.Background(), 2*testTimeout)
	defer cancel()
	done := make(chan error, writers)
	for wi := range writers {
		h := a
		if wi%3 == 2 {
			h = b
		}
		w := dial(t, h, pipe)
		go func() {
			pl := zpipes.NewPipeline(100)
			for i := range each {
				if err := pl.Add(ctx, w.WriteAsync(pipe, writerChunk(wi, i))); err != nil {
					done <- err
					return
				}
			}
			done <- pl.Flush(ctx)
		}()
	}

	// Held: the stream stops growing, within its limit, before the
	// writers have their OKs.
	var last uint64
	for stable := 0; stable < 4; {
		time.Sleep(150 * time.Millisecond)
		info := streamInfo(ctx, t, n.JS, jsname.PipeStream([]byte(pipe)))
		if info == nil {
			continue // not made yet
		}
		if info.State.Bytes > limit {
			t.Fatalf("stream holds %d bytes, over its limit %d", info.State.Bytes, limit)
		}
		if info.State.Bytes == last && last > 0 {
			stable++
		} else {
			stable, last = 0, info.State.Bytes
		}
	}
	if len(done) > 0 {
		t.Fatalf("a writer finished while the pipe was full: %v", <-done)
	}

	rd := dial(t, r, pipe)
	next := make([]int, writers)
	var reads []*zpipes.Pending
	for n := range writers * each {
		for len(reads) < 100 && n+len(reads) < writers*each {
			reads = append(reads, rd.ReadAsync(pipe))
		}
		got, err := reads[0].Wait(ctx)
		reads = reads[1:]
		if err != nil {
			t.Fatal(err)
		}
		wi, i := int(got[0]), int(binary.BigEndian.Uint64(got[1:]))
		if wi >= writers || i != next[wi] {
			t.Fatalf("read chunk %d of writer %d, want %d", i, wi, next[wi])
		}
		next[wi]++
	}
	for range writers {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if a.store.batched.Load() == 0 {
		t.Fatal("no chunk was published in a batch")
	}
	t.Logf("chunks in batches: %d on A, %d on B", a.store.batched.Load(), b.store.batched.Load())
}

// streamInfo is the stream's state, or nil if there is no such stream;
// unanswered requests (a node just started) are retried.
func streamInfo(ctx context.Context, t *testing.T, js jetstream.JetStream, name string) *jetstream.StreamInfo {
	t.Helper()
	var info *jetstream.StreamInfo
	err := natsnode.Retry(ctx, "stream info", testLog, func(ctx context.Context) error {
		st, err := js.Stream(ctx, name)
		if err == nil {
			info = st.CachedInfo()
		}
		return err
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// publishWithin runs q.publish(items) and fails the test if it does not
// return in time (a retry that never ends).
func publishWithin(t *testing.T, q *pipeQueue, items []pubItem) int {
	t.Helper()
	type result struct {
		n  int
		ok bool
	}
	res := make(chan result, 1)
	go func() {
		n, ok := q.publish(items)
		res <- result{n, ok}
	}()
	select {
	case r := <-res:
		if !r.ok {
			t.Fatal("publish stopped")
		}
		return r.n
	case <-time.After(testTimeout):
		t.Fatal("publish retried for ever")
		return 0
	}
}

// A batch retried after its acknowledgement was lost is not stored
// twice: an atomic one neither when the retry is the same batch, nor when
// the batch was cut in between (here by the server's batch limit, smaller
// than the store's) and its chunks are sent in other batches; a fast one
// when a part of it was stored.
func TestPipeBatchRetry(t *testing.T) {
	c := natstest.Start(t, 1)
	js := c.Nodes[0].JS
	s := NewPipeStore(js, PipeConfig{Replicas: 1, PipeLimit: 8 << 20, Logger: testLog})
	t.Cleanup(func() { s.Close() })
	q := s.Queue("retried").(*pipeQueue)
	if err := q.ensureStream(); err != nil {
		t.Fatal(err)
	}
	if q.mode.Load() != fastBatches {
		t.Fatalf("one-replica pipe stream in mode %d, want fast batches", q.mode.Load())
	}
	// Atomic batches, as on replicated streams (the stream takes both).
	q.mode.Store(atomicBatches)
	s.maxBatch.Store(1500)
	// batch takes chunks from to to-1 as a batch, with message IDs.
	batch := func(from, to int) []pubItem {
		for i := from; i < to; i++ {
			q.pubQueue = append(q.pubQueue, pubItem{ack: &appendAck{}, chunk: chunk(i)})
		}
		items := q.takeBatch()
		if len(items) != to-from {
			t.Fatalf("took %d chunks, want %d", len(items), to-from)
		}
		return items
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	stored := func() uint64 { return streamInfo(ctx, t, js, q.stream).State.Msgs }

	// Stored, the answer lost: the same batch again is taken as stored.
	items := batch(0, 100)
	if _, err := q.send(ctx, atomicBatches, items); err != nil {
		t.Fatal(err)
	}
	if n := publishWithin(t, q, items); n != 100 || stored() != 100 {
		t.Fatalf("retry of a stored batch: %d published, %d in the stream, want 100, 100", n, stored())
	}

	// 1000 of 1500 stored by an attempt whose answer was lost; the
	// server refuses 1500 at once, so the publisher cuts the batch.
	items = batch(100, 1600)
	if _, err := q.send(ctx, atomicBatches, items[:1000]); err != nil {
		t.Fatal(err)
	}
	for i := range items[:1000] {
		items[i].sent = true
	}
	q.pubQueue, q.pubActive = items, true
	q.publisher()
	acked := 0
	for len(s.notes) > 0 {
		acked += len((<-s.notes).(published).acks)
	}
	if acked != 1500 || stored() != 1600 {
		t.Fatalf("cut batch: %d acknowledged, %d in the stream, want 1500, 1600", acked, stored())
	}
	if s.maxBatch.Load() >= 1500 {
		t.Fatalf("batch limit %d after the server refused 1500", s.maxBatch.Load())
	}

	// Fast batches: 100 of 150 stored, the answer lost; the retry
	// stores the other 50, once.
	q.mode.Store(fastBatches)
	items = batch(1600, 1750)
	if n, err := q.send(ctx, fastBatches, items[:100]); n != 100 || err != nil {
		t.Fatalf("fast batch: %d stored, %v", n, err)
	}
	if n := publishWithin(t, q, items); n != 150 || stored() != 1750 {
		t.Fatalf("retry of a fast batch: %d published, %d in the stream, want 150, 1750", n, stored())
	}

	st, err := js.Stream(ctx, q.stream)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 1750; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil || index(m.Data) != int(seq-1) {
			t.Fatalf("stream sequence %d: %v, want chunk %d", seq, err, seq-1)
		}
	}
}

// noAtomicJS stands for a server before nats-server 2.12: it ignores the
// stream flags of batches.
type noAtomicJS struct{ jetstream.JetStream }

func (j noAtomicJS) CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	cfg.AllowAtomicPublish, cfg.AllowBatchPublish = false, false
	return j.JetStream.CreateStream(ctx, cfg)
}

func (j noAtomicJS) UpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	cfg.AllowAtomicPublish, cfg.AllowBatchPublish = false, false
	return j.JetStream.UpdateStream(ctx, cfg)
}

// Where the server does not take atomic batches, chunks are published
// one at a time; a zbroker on a server that does sets the flag on the
// existing stream and batches.
func TestPipeBatchFallback(t *testing.T) {
	c := natstest.Start(t, 1)
	n := c.Nodes[0]
	old := startPipeHostJS(t, noAtomicJS{n.JS}, 1, 1<<20)
	const pipe = "unbatched"
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := writeChunks(ctx, dial(t, old, pipe), pipe, 300); err != nil {
		t.Fatal(err)
	}
	stream := jsname.PipeStream([]byte(pipe))
	if flag := streamInfo(ctx, t, n.JS, stream).Config.AllowAtomicPublish; flag || old.store.batched.Load() != 0 || !old.store.unbatched.Load() {
		t.Fatalf("without atomic batches: flag %v, %d chunks batched", flag, old.store.batched.Load())
	}

	h := startPipeHost(t, n, 1<<20)
	w := dial(t, h, pipe)
	pl := zpipes.NewPipeline(200)
	for i := 300; i < 600; i++ {
		if err := pl.Add(ctx, w.WriteAsync(pipe, chunk(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := pl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	readChunks(ctx, t, dial(t, h, pipe), pipe, 0, 600)
	if cfg := streamInfo(ctx, t, n.JS, stream).Config; !cfg.AllowAtomicPublish || !cfg.AllowBatchPublish {
		t.Fatal("stream not updated to take batches")
	}
	if h.store.batched.Load() == 0 {
		t.Fatal("no chunk was published in a batch after the update")
	}
}

// Small chunks in a replicated pipe with a small limit: a chunk takes
// far more room in the stream than its data (subject, message and batch
// headers, the store's record), and an atomic batch that could never fit
// in the empty stream would hold the writer for ever. Every chunk is read,
// in order.
func TestPipeBatchOfSmallChunksFits(t *testing.T) {
	c := natstest.Start(t, 3)
	const limit = 16 << 10
	a, r := startPipeHost(t, c.Nodes[0], limit), startPipeHost(t, c.Nodes[2], limit)
	const pipe, n = "small", 600
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	w := dial(t, a, pipe)
	writeErr := make(chan error, 1)
	go func() {
		pl := zpipes.NewPipeline(200)
		for i := range n {
			if err := pl.Add(ctx, w.WriteAsync(pipe, binary.BigEndian.AppendUint64(nil, uint64(i)))); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- pl.Flush(ctx)
	}()
	readChunks(ctx, t, dial(t, r, pipe), pipe, 0, n)
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
	if a.store.batched.Load() == 0 {
		t.Fatal("no chunk was published in a batch")
	}
}

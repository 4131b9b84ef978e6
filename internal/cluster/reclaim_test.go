package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/zbroker/zbroker/internal/jsname"
	"github.com/zbroker/zbroker/internal/natsnode/natstest"
)

// A released pipe's stream is kept while it holds chunks and deleted once
// it is empty; writes racing with the deletion (on another host) are
// never lost: each is read.
func TestPipeStreamReclaimed(t *testing.T) {
	c := natstest.Start(t, 1)
	js := c.Nodes[0].JS
	a, b := startPipeHost(t, c.Nodes[0], 1<<20), startPipeHost(t, c.Nodes[0], 1<<20)
	const pipe = "reclaimed"
	stream := jsname.PipeStream([]byte(pipe))
	ctx, cancel := context.WithTimeout(context.Background(), 2*testTimeout)
	defer cancel()
	reclaimed := func(h *pipeHost, n int64) {
		t.Helper()
		waitFor(t, "a reclaim attempt", func() bool { return h.store.reclaims.Load() >= n })
	}
	w := dial(t, a, pipe)
	for i := range 3 {
		if err := w.Write(ctx, pipe, chunk(i)); err != nil {
			t.Fatal(err)
		}
	}
	w.Disconnect()
	reclaimed(a, 1)
	st, err := js.Stream(ctx, stream)
	if err != nil || st.CachedInfo().State.Msgs != 3 {
		t.Fatalf("stream holding chunks after its pipe's release: %v", err)
	}
	// The pipe opened again on A: its chunks get new message IDs, not
	// taken for copies of the first three.
	w = dial(t, a, pipe)
	for i := 3; i < 6; i++ {
		if err := w.Write(ctx, pipe, chunk(i)); err != nil {
			t.Fatal(err)
		}
	}
	w.Disconnect()
	reclaimed(a, 2)
	r := dial(t, b, pipe)
	for i := range 6 {
		if got, err := r.Read(ctx, pipe); err != nil || index(got) != i {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	r.Disconnect()
	reclaimed(b, 1)
	if _, err := js.Stream(ctx, stream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("empty stream of a released pipe: %v, want it deleted", err)
	}

	// B's pipe is released (B's reclaim fences the empty stream, waits
	// and deletes it) while a writer on A writes a batch of chunks, a
	// little later each time; then B reads them.
	w = dial(t, a, pipe)
	const batch = 20
	for i := range 10 {
		o := dial(t, b, pipe)
		o.Disconnect()
		done := make(chan error, 1)
		go func() {
			time.Sleep(time.Duration(i) * fenceGrace / 6)
			done <- writeChunks(ctx, w, pipe, batch)
		}()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		r := dial(t, b, pipe)
		readChunks(ctx, t, r, pipe, 0, batch)
		r.Disconnect()
	}
	t.Logf("B deleted the stream %d times in %d attempts", b.store.reclaimed.Load(), b.store.reclaims.Load())
}

// A fence whose reclaimer died (the stream left at MaxBytes 1) is lifted
// by the writer it holds back.
func TestPipeStaleFenceLifted(t *testing.T) {
	old := fenceStale
	t.Cleanup(func() { fenceStale = old }) // last: after the host stopped
	fenceStale = time.Second
	c := natstest.Start(t, 1)
	js := c.Nodes[0].JS
	h := startPipeHost(t, c.Nodes[0], 1<<20)
	const pipe = "fenced"
	ctx, cancel := context.WithTimeout(context.Background(), 2*testTimeout)
	defer cancel()
	w := dial(t, h, pipe)
	if err := w.Write(ctx, pipe, chunk(0)); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, jsname.PipeStream([]byte(pipe)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.MaxBytes = fenceBytes
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, pipe, chunk(1)); err != nil {
		t.Fatalf("write to a stale fenced stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil || info.Config.MaxBytes != 1<<20 || info.State.Msgs != 2 {
		t.Fatalf("stream after the fence was lifted: %+v %+v %v", info.Config.MaxBytes, info.State, err)
	}
}

// A writer that finds its pipe's stream gone makes it again only once
// the reclaimer deleting it has given the lease back: nats-server moves
// a deleted stream's directory away at the very end, so a stream made
// before then would lose its files.
func TestPipeStreamNotMadeWhileReclaimed(t *testing.T) {
	c := natstest.Start(t, 1)
	js := c.Nodes[0].JS
	h := startPipeHost(t, c.Nodes[0], 1<<20)
	const pipe = "being-reclaimed"
	stream := jsname.PipeStream([]byte(pipe))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	rev, err := h.store.leases.acquireForReclaim(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	w := dial(t, h, pipe)
	done := make(chan error, 1)
	go func() { done <- w.Write(ctx, pipe, chunk(0)) }()
	select {
	case err := <-done:
		t.Fatalf("write answered (%v) while a reclaimer held the lease", err)
	case <-time.After(4 * fenceGrace):
	}
	if _, err := js.Stream(ctx, stream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("stream made while a reclaimer held the lease: %v", err)
	}
	h.store.leases.release(stream, rev)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r := dial(t, h, pipe)
	readChunks(ctx, t, r, pipe, 0, 1)
}

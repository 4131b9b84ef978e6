package cluster

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/zbroker/zbroker/internal/natsnode/natstest"
)

// A reader lease bucket an earlier zbroker made in memory is used as it
// is (with a warning), not refused.
func TestLeaseBucketInMemory(t *testing.T) {
	c := natstest.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := c.Nodes[0].JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: LeaseBucket, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	h := startPipeHost(t, c.Nodes[0], 1<<20)
	w, r := dial(t, h, "p"), dial(t, h, "p")
	if err := w.Write(ctx, "p", chunk(7)); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Read(ctx, "p"); err != nil || index(got) != 7 {
		t.Fatalf("read %v, %v", got, err)
	}
}

// lossyLeaseJS loses the answers of the lease bucket's first Create
// (applied) and first Delete (not applied), as a loaded server's requests
// time out.
type lossyLeaseJS struct {
	jetstream.JetStream
	createLost, deleteLost, updateLost atomic.Bool
}

func (j *lossyLeaseJS) CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := j.JetStream.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil || cfg.Bucket != LeaseBucket {
		return kv, err
	}
	return lossyLeaseKV{kv, j}, nil
}

type lossyLeaseKV struct {
	jetstream.KeyValue
	j *lossyLeaseJS
}

func (kv lossyLeaseKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	rev, err := kv.KeyValue.Create(ctx, key, value, opts...)
	if err == nil && kv.j.createLost.CompareAndSwap(false, true) {
		return 0, context.DeadlineExceeded
	}
	return rev, err
}

// Update loses the answer of the first renewal, applied.
func (kv lossyLeaseKV) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	rev, err := kv.KeyValue.Update(ctx, key, value, revision)
	if err == nil && kv.j.updateLost.CompareAndSwap(false, true) {
		return 0, context.DeadlineExceeded
	}
	return rev, err
}

func (kv lossyLeaseKV) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	if kv.j.deleteLost.CompareAndSwap(false, true) {
		return context.DeadlineExceeded
	}
	return kv.KeyValue.Delete(ctx, key, opts...)
}

// A lease request whose answer is lost is not taken for another reader's
// lease: the retry of a Create that took the lease finds it ours, and a
// Delete is sent again. Both used to leave the pipe refused to every
// reader ("already has a reader") until the lease expired.
func TestLeaseAnswersLost(t *testing.T) {
	c := natstest.Start(t, 1)
	js := &lossyLeaseJS{JetStream: c.Nodes[0].JS}
	a := startPipeHostJS(t, js, 1, 1<<20)
	b := startPipeHost(t, c.Nodes[0], 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	const pipe = "lossy"
	w := dial(t, a, pipe)
	if err := writeChunks(ctx, w, pipe, 2); err != nil {
		t.Fatal(err)
	}
	r := dial(t, a, pipe)
	if got, err := r.Read(ctx, pipe); err != nil || index(got) != 0 {
		t.Fatalf("read on the host whose lease answer was lost: %v %v", got, err)
	}
	if !js.createLost.Load() {
		t.Fatal("no lease taken through the lossy bucket")
	}
	r.Disconnect()
	// A's lease goes back although its first Delete was lost: a reader
	// on B is not refused.
	r = dial(t, b, pipe)
	if got, err := r.Read(ctx, pipe); err != nil || index(got) != 1 {
		t.Fatalf("read on another host after the lease was given back: %v %v", got, err)
	}
	if !js.deleteLost.Load() {
		t.Fatal("no lease given back through the lossy bucket")
	}
}

// A renewal applied though its answer was lost is not taken for a lease
// lost: that ended a reading spell with "reader lease lost". A lease
// another holder took after ours still is.
func TestLeaseRenewAnswerLost(t *testing.T) {
	c := natstest.Start(t, 1)
	js := &lossyLeaseJS{JetStream: c.Nodes[0].JS}
	log := slog.New(slog.DiscardHandler)
	mine, theirs := newLeases(js, 1, log), newLeases(c.Nodes[0].JS, 1, log)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	rev, err := mine.acquire(ctx, "renewed")
	if err != nil {
		t.Fatal(err)
	}
	next, err := mine.renew(ctx, "renewed", rev)
	if err != nil {
		t.Fatalf("renewal whose answer was lost: %v", err)
	}
	if !js.updateLost.Load() || next <= rev {
		t.Fatalf("no renewal answer lost (%v), or revision %d not past %d", js.updateLost.Load(), next, rev)
	}
	if next, err = mine.renew(ctx, "renewed", next); err != nil {
		t.Fatalf("renewal at the revision the retry found: %v", err)
	}
	// Another holder takes the lease once ours is gone: our renewal fails.
	mine.release("renewed", next)
	if _, err := theirs.acquire(ctx, "renewed"); err != nil {
		t.Fatal(err)
	}
	if _, err := mine.renew(ctx, "renewed", next); !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		t.Fatalf("renewal of a lease another holder took: %v, want a revision mismatch", err)
	}
}

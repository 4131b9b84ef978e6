package cluster

import (
	"context"
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

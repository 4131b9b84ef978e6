package cluster

import (
	"bytes"
	"context"
	"testing"

	"github.com/zbroker/zbroker/internal/natsnode/natstest"
)

// A chunk larger than the pipe limit is stored into an empty pipe, as on
// one host: the stream's MaxBytes has room for one largest chunk, also
// after the limit is reloaded. A stream of exactly the pipe limit
// refused it for ever, and its WRITE was never answered.
func TestPipeChunkOverLimitStored(t *testing.T) {
	c := natstest.Start(t, 1)
	const limit, maxChunk = 4 << 10, 64 << 10
	h := startPipeHostConfig(t, c.Nodes[0].JS, PipeConfig{Replicas: c.Nodes[0].Replicas, PipeLimit: limit, MaxChunk: maxChunk})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	const pipe = "big"
	w, r := dial(t, h, pipe), dial(t, h, pipe)
	for i, size := range []int{maxChunk, 32 << 10} {
		if i == 1 {
			h.store.SetPipeLimit(limit / 2)
		}
		big := bytes.Repeat([]byte{byte('a' + i)}, size)
		if err := w.Write(ctx, pipe, big); err != nil {
			t.Fatalf("write of %d bytes into a pipe limited to %d: %v", size, limit, err)
		}
		got, err := r.Read(ctx, pipe)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, big) {
			t.Fatalf("read %d bytes, want the %d written", len(got), size)
		}
	}
}

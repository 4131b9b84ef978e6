package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/jsname"
	"github.com/zbroker/zbroker/internal/natsnode/natstest"
)

// An acknowledging reader's ACK is JetStream's ack: what it acknowledged
// is deleted from the stream, what it did not goes back (in order) when
// it leaves, and a reader on another host gets it first. It may hold more
// than the log store's 128 and than one fetch batch unacknowledged.
func TestPipeAckAcrossHosts(t *testing.T) {
	c := natstest.Start(t, 3)
	a, b, cc := startPipeHost(t, c.Nodes[0], 1<<20), startPipeHost(t, c.Nodes[1], 1<<20), startPipeHost(t, c.Nodes[2], 1<<20)
	const pipe, n = "acked", 600
	ctx, cancel := context.WithTimeout(context.Background(), 2*testTimeout)
	defer cancel()
	if err := writeChunks(ctx, dial(t, a, pipe), pipe, n); err != nil {
		t.Fatal(err)
	}

	r := dialAck(t, cc, pipe)
	readChunks(ctx, t, r, pipe, 0, 400)
	if err := r.Ack(ctx, pipe, 150); err != nil {
		t.Fatal(err)
	}
	if st := cc.srv.Stats(); st.Unacked != 250 {
		t.Fatalf("reader's host: %+v, want 250 unacknowledged", st)
	}
	// JetStream deletes the acknowledged chunks (work queue) and keeps
	// the rest.
	deadline := time.Now().Add(testTimeout)
	for {
		info, err := c.Nodes[0].JS.Stream(ctx, jsname.PipeStream([]byte(pipe)))
		if err != nil {
			t.Fatal(err)
		}
		if st := info.CachedInfo().State; st.Msgs == n-150 && st.FirstSeq == 151 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream state %+v, want the 150 acknowledged chunks deleted", info.CachedInfo().State)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.Disconnect()

	readChunks(ctx, t, dial(t, b, pipe), pipe, 150, n)
}

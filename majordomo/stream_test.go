package majordomo

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/zbroker/zbroker/zmtp"
)

// A 0.2 worker streaming PARTIALs to a client that does not read is not
// read either once ClientQueueLimit waits for that client (its data stays
// on its side), is not expired meanwhile, and the stream completes in
// order once the client reads.
func TestStreamBackpressure(t *testing.T) {
	srv := startBroker(t, Options{ClientQueueLimit: 1 << 20, HeartbeatInterval: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dial := func() *zmtp.Conn {
		c, err := zmtp.Dial(ctx, srv.Endpoint(), zmtp.Options{SocketType: "DEALER"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	w := dial()
	w.Send([][]byte{[]byte(HeaderWorkerV2), {w2Ready}, []byte("stream")})
	waitWorkers(t, srv, 1)
	c := dial()
	c.Send([][]byte{[]byte(HeaderClientV2), {clientRequest}, []byte("stream"), []byte("go")})
	req, err := w.Recv()
	if err != nil || len(req) < 4 {
		t.Fatalf("worker got %q, %v", req, err)
	}
	addr := req[2]
	const parts = 300
	chunk := make([]byte, 256<<10) // 75 MiB in all
	for i := 0; i < parts; i++ {
		body := append([]byte(fmt.Sprintf("%04d", i)), chunk...)
		w.Send([][]byte{[]byte(HeaderWorkerV2), {w2Partial}, addr, nil, body})
	}
	w.Send([][]byte{[]byte(HeaderWorkerV2), {w2Final}, addr, nil, []byte("done")})
	// The client reads nothing yet: the broker must stop taking the
	// worker's PARTIALs, which then stay in the worker's own queue, and
	// must not expire the worker meanwhile (> liveness × interval).
	time.Sleep(time.Second)
	if _, queued := w.Queued(); queued < 40<<20 {
		t.Fatalf("broker kept reading the worker: only %d bytes left on the worker's side", queued)
	}
	if st := srv.Stats(); st.Workers != 1 {
		t.Fatalf("streaming worker expired while held: %+v", st)
	}
	for i := 0; i < parts; i++ {
		f, err := c.Recv()
		if err != nil || len(f) != 4 || f[1][0] != clientPartial || string(f[3][:4]) != fmt.Sprintf("%04d", i) {
			t.Fatalf("PARTIAL %d: %d frames, %v", i, len(f), err)
		}
	}
	if f, err := c.Recv(); err != nil || f[1][0] != clientFinal || string(f[3]) != "done" {
		t.Fatalf("FINAL: %q, %v", f, err)
	}
}

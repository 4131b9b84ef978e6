package majordomo

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/owner"
	"github.com/zbroker/zbroker/zmtp"
)

// TestRequestReuseWaitsForWrite: an answered request's struct, which its
// reply's frame list is carved from, is reused only once that reply is
// written. A client that does not read gets its first n replies queued in
// the transport; the next n requests must not overwrite them, so every
// reply it then reads carries its own request's body. Once the client has
// read them all, the next request reuses the oldest answered one.
func TestRequestReuseWaitsForWrite(t *testing.T) {
	srv := startBroker(t, Options{})
	goWorker(t, srv.Endpoint(), "echo", echo, WorkerOptions{Version: V2})
	waitWorkers(t, srv, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := zmtp.Dial(ctx, srv.Endpoint(), zmtp.Options{SocketType: "DEALER"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// 2n replies of 3 KB are far more than the socket buffers and what
	// the client's reader takes ahead: most of each phase's replies wait
	// in the broker's send queue.
	const n, size = 300, 3000
	body := func(i int) []byte {
		b := bytes.Repeat([]byte{byte('a' + i%26)}, size)
		return fmt.Appendf(b[:0:size], "%d:", i)[:size:size]
	}
	for phase := range 2 {
		for i := phase * n; i < (phase+1)*n; i++ {
			if err := c.Send([][]byte{[]byte(HeaderClientV2), {clientRequest}, []byte("echo"), body(i)}); err != nil {
				t.Fatal(err)
			}
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			var answered bool
			owner.Do(srv.calls, srv.stopped, func() {
				answered = srv.nextID == uint64((phase+1)*n) && srv.queued+srv.inflight == 0
			})
			if answered {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("phase %d: requests not all answered", phase)
			}
		}
	}
	seen := map[string]bool{}
	for range 2 * n {
		f, err := c.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(f) != 4 || string(f[2]) != "echo" || len(f[3]) != size {
			t.Fatalf("bad reply %q", f)
		}
		var i int
		if _, err := fmt.Sscanf(string(f[3]), "%d:", &i); err != nil || i < 0 || i >= 2*n || !bytes.Equal(f[3], body(i)) {
			t.Fatalf("reply body %.20q... is no request's", f[3])
		}
		if seen[string(f[3])] {
			t.Fatalf("reply %d twice: a reply's frames were overwritten while queued", i)
		}
		seen[string(f[3])] = true
	}

	// Everything is written now: a new request takes the oldest spare.
	var oldest *request
	owner.Do(srv.calls, srv.stopped, func() {
		if srv.spares.Len() > 0 {
			oldest = srv.spares.At(0)
		}
	})
	if oldest == nil {
		t.Fatal("no answered request kept for reuse")
	}
	var got *request
	// A worker that does not answer, so the request stays in flight.
	w := dialRaw(t, srv.Endpoint())
	w.send("MDPW02", "\x01", "hold")
	waitWorkers(t, srv, 2)
	if err := c.Send(frames(HeaderClientV2, "\x01", "hold", "x")); err != nil {
		t.Fatal(err)
	}
	w.recvFrames()
	owner.Do(srv.calls, srv.stopped, func() {
		for wk := range srv.workers {
			if wk.current != nil {
				got = wk.current
			}
		}
	})
	if got != oldest {
		t.Fatalf("new request %p, want the oldest spare %p", got, oldest)
	}
}

// TestClientListsReusedWhenWritten: a client sending a burst of requests
// reuses a request's frame list only once the transport has written it,
// so the broker sees every request as sent.
func TestClientListsReusedWhenWritten(t *testing.T) {
	srv := startBroker(t, Options{})
	for range 4 {
		goWorker(t, srv.Endpoint(), "echo", echo, WorkerOptions{})
	}
	waitWorkers(t, srv, 4)
	c := newClient(t, srv.Endpoint(), ClientOptions{})
	ctx := testCtx(t, 10*time.Second)
	const n = 3000
	for i := range n {
		if err := c.Send(ctx, "echo", fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	seen := make([]bool, n)
	for range n {
		r, err := c.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var i int
		if _, err := fmt.Sscanf(join(r.Body), "%d", &i); err != nil || i < 0 || i >= n || seen[i] {
			t.Fatalf("reply %q: not one of the requests, or twice", join(r.Body))
		}
		seen[i] = true
	}
}

// TestSentListsBounded: a client keeps the lists of small messages only,
// and at most sentListsMax of them, since each keeps its frames alive.
func TestSentListsBounded(t *testing.T) {
	var l sentLists
	l.note([][]byte{make([]byte, sentListBytes+1)})
	if l.sent != 1 || l.lists.Len() != 0 {
		t.Fatalf("large message: %d sent, %d lists kept, want 1 and 0", l.sent, l.lists.Len())
	}
	for range sentListsMax + 10 {
		l.note([][]byte{[]byte("small")})
	}
	if l.lists.Len() != sentListsMax {
		t.Fatalf("%d lists kept, want %d", l.lists.Len(), sentListsMax)
	}
}

package majordomo

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// A flood of requests for absent services stops at the client's
// queued-bytes cap: the requests past it get 503 at once, those before it
// wait (and time out with 504 as usual); other clients are not affected.
func TestClientQueueBytesCap(t *testing.T) {
	const limit = 64 << 10
	srv := startBroker(t, Options{ClientQueueBytes: limit, RequestTimeout: time.Minute})
	c, err := NewClient(srv.Endpoint(), ClientOptions{Timeout: 10 * time.Second, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	body := make([]byte, 1024)
	const n = 200
	for i := range n {
		if err := c.Send(ctx, fmt.Sprintf("absent-%d", i), body); err != nil {
			t.Fatal(err)
		}
	}
	// Every request costs its frames plus 256 bytes: about 1.3 KiB.
	queued := 0
	for queued = 0; int64(queued+1)*(1024+256+10) <= limit; queued++ {
	}
	refused := 0
	for refused < n-queued {
		_, err := c.Recv(ctx)
		var se *ServiceError
		if !errors.As(err, &se) || se.Code != CodeQueueFull {
			t.Fatalf("after %d refusals: %v, want a 503 failure", refused, err)
		}
		refused++
	}
	waitStats(t, srv, "queued requests", func(st Stats) bool { return st.Queued >= queued-2 && st.Queued <= queued })
	// Another client still gets its requests queued.
	other, err := NewClient(srv.Endpoint(), ClientOptions{Timeout: 10 * time.Second, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	before := srv.Stats().Queued
	if err := other.Send(ctx, "absent-0", body); err != nil {
		t.Fatal(err)
	}
	waitStats(t, srv, "the other client's request", func(st Stats) bool { return st.Queued == before+1 })
}

package majordomo

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/zbroker/zbroker/zmtp"
)

// A Call after the broker restarted reaches the new broker at once
// instead of failing on (or waiting out a timeout for) the dead
// connection of the previous call.
func TestCallAfterBrokerRestart(t *testing.T) {
	opts := Options{Name: "restart-" + time.Now().Format("150405.000000000"), Logger: quietLogger()}
	srv := startBroker(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w, err := NewWorker(srv.Endpoint(), "echo", func(_ context.Context, r *Request) [][]byte { return r.Body },
		WorkerOptions{ReconnectMin: 20 * time.Millisecond, ReconnectMax: 100 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	go w.Run(ctx)
	waitWorkers(t, srv, 1)
	cl, err := NewClient(srv.Endpoint(), ClientOptions{Timeout: 3 * time.Second, Retries: -1, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Call(ctx, "echo", []byte("1")); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	srv2 := startBroker(t, opts)
	waitWorkers(t, srv2, 1)
	start := time.Now()
	if _, err := cl.Call(ctx, "echo", []byte("2")); err != nil {
		t.Fatalf("call after restart with no retries: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("call after restart took %v: it waited out the dead connection", d)
	}
}

// A connection that is both a worker and a client with MaxPending
// requests waiting is paused as a client, but its worker is not expired
// for the heartbeats it cannot be read for.
func TestPausedWorkerAndClientNotExpired(t *testing.T) {
	srv := startBroker(t, Options{HeartbeatInterval: 50 * time.Millisecond, MaxPending: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := zmtp.Dial(ctx, srv.Endpoint(), zmtp.Options{SocketType: "DEALER"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Send([][]byte{[]byte(HeaderWorkerV2), {w2Ready}, []byte("w")})
	waitWorkers(t, srv, 1)
	for i := 0; i < 2; i++ {
		c.Send([][]byte{[]byte(HeaderClientV2), {clientRequest}, []byte("nobody"), []byte("x")})
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(25 * time.Millisecond):
				c.Send([][]byte{[]byte(HeaderWorkerV2), {w2Heartbeat}})
			}
		}
	}()
	time.Sleep(time.Second) // 20 heartbeat intervals
	if st := srv.Stats(); st.Workers != 1 {
		t.Fatalf("worker on a connection paused as a client was expired: %+v", st)
	}
}

// A 0.1 client never sees PARTIALs, so a 0.2 worker that streamed some
// and then died does not make its request fail: another worker serves it.
func TestV1RequestSurvivesStreamingWorkerDeath(t *testing.T) {
	srv := startBroker(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := zmtp.Dial(ctx, srv.Endpoint(), zmtp.Options{SocketType: "DEALER"})
	if err != nil {
		t.Fatal(err)
	}
	a.Send([][]byte{[]byte(HeaderWorkerV2), {w2Ready}, []byte("echo")})
	waitWorkers(t, srv, 1)
	cl, err := NewClient(srv.Endpoint(), ClientOptions{Version: V1, Timeout: 5 * time.Second, Retries: -1, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	reply := make(chan error, 1)
	go func() {
		body, err := cl.Call(ctx, "echo", []byte("hi"))
		if err == nil && (len(body) != 1 || string(body[0]) != "hi") {
			err = fmt.Errorf("reply %q", body)
		}
		reply <- err
	}()
	req, err := a.Recv()
	if err != nil {
		t.Fatal(err)
	}
	a.Send([][]byte{[]byte(HeaderWorkerV2), {w2Partial}, req[2], nil, []byte("partial")})
	time.Sleep(50 * time.Millisecond)
	b, err := NewWorker(srv.Endpoint(), "echo", func(_ context.Context, r *Request) [][]byte { return r.Body },
		WorkerOptions{Version: V2, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	go b.Run(ctx)
	waitWorkers(t, srv, 2)
	a.Close()
	if err := <-reply; err != nil {
		t.Fatalf("0.1 call after its streaming worker died: %v", err)
	}
}

package majordomo

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestGoRoundTrip(t *testing.T) {
	srv := startBroker(t, Options{})
	for _, wv := range []Version{V1, V2} {
		goWorker(t, srv.Endpoint(), fmt.Sprintf("echo%d", wv), echo, WorkerOptions{Version: wv})
	}
	waitWorkers(t, srv, 2)
	for _, cv := range []Version{V1, V2} {
		for _, wv := range []Version{V1, V2} {
			c := newClient(t, srv.Endpoint(), ClientOptions{Version: cv})
			svc := fmt.Sprintf("echo%d", wv)
			got, err := c.Call(testCtx(t, 5*time.Second), svc, []byte("hello"), nil, []byte("world"))
			if err != nil {
				t.Fatalf("client %v → worker %v: %v", cv, wv, err)
			}
			expect(t, fmt.Sprintf("client %v → worker %v", cv, wv), join(got), "hello||world")
		}
	}
	st := srv.Stats()
	if st.Workers != 2 || st.IdleWorkers != 2 || st.Queued != 0 || st.InFlight != 0 {
		t.Fatalf("stats after round trips: %+v", st)
	}
}

// The exact bytes the broker sends and accepts, both versions.
func TestWireFormat(t *testing.T) {
	srv := startBroker(t, Options{})
	w1, w2 := dialRaw(t, srv.Endpoint()), dialRaw(t, srv.Endpoint())
	w1.send("", "MDPW01", "\x01", "s1")
	w2.send("MDPW02", "\x01", "s2")
	waitWorkers(t, srv, 2)

	c := dialRaw(t, srv.Endpoint())
	c.send("", "MDPC01", "s1", "a", "b")
	req := w1.recvFrames()
	expect(t, "0.1 REQUEST", join(req[:3])+"|"+join(req[4:]), "|MDPW01|\x02||a|b")
	if len(req[3]) != 8 {
		t.Fatalf("client address frame %q", req[3])
	}
	w1.c.Send([][]byte{{}, []byte("MDPW01"), {3}, req[3], {}, []byte("r1")})
	expect(t, "0.1 REPLY to client", c.recv(), "|MDPC01|s1|r1")

	c.send("MDPC02", "\x01", "s2", "x")
	req = w2.recvFrames()
	expect(t, "0.2 REQUEST", join(req[:2])+"|"+join(req[3:]), "MDPW02|\x02||x")
	w2.c.Send([][]byte{[]byte("MDPW02"), {3}, req[2], {}, []byte("p1")})
	w2.c.Send([][]byte{[]byte("MDPW02"), {3}, req[2], {}, []byte("p2"), []byte("p2b")})
	w2.c.Send([][]byte{[]byte("MDPW02"), {4}, req[2], {}, []byte("f")})
	expect(t, "PARTIAL 1", c.recv(), "MDPC02|\x02|s2|p1")
	expect(t, "PARTIAL 2", c.recv(), "MDPC02|\x02|s2|p2|p2b")
	expect(t, "FINAL", c.recv(), "MDPC02|\x03|s2|f")

	// Cross-version: a 0.1 client served by a 0.2 worker gets the FINAL
	// only; a 0.2 client served by a 0.1 worker gets the REPLY as FINAL.
	c.send("", "MDPC01", "s2", "y")
	req = w2.recvFrames()
	w2.c.Send([][]byte{[]byte("MDPW02"), {3}, req[2], {}, []byte("dropped")})
	w2.c.Send([][]byte{[]byte("MDPW02"), {4}, req[2], {}, []byte("f2")})
	expect(t, "0.2 worker → 0.1 client", c.recv(), "|MDPC01|s2|f2")
	c.send("MDPC02", "\x01", "s1", "z")
	req = w1.recvFrames()
	w1.c.Send([][]byte{{}, []byte("MDPW01"), {3}, req[3], {}, []byte("r2")})
	expect(t, "0.1 worker → 0.2 client", c.recv(), "MDPC02|\x03|s1|r2")

	// A REQ-style envelope through a proxy is kept and returned.
	c.send("hop1", "hop2", "", "MDPC01", "s1", "q")
	req = w1.recvFrames()
	w1.c.Send([][]byte{{}, []byte("MDPW01"), {3}, req[3], {}, []byte("r3")})
	expect(t, "envelope", c.recv(), "hop1|hop2||MDPC01|s1|r3")
}

func TestMMI(t *testing.T) {
	srv := startBroker(t, Options{})
	goWorker(t, srv.Endpoint(), "echo", echo, WorkerOptions{})
	goWorker(t, srv.Endpoint(), "echo", echo, WorkerOptions{Version: V2})
	waitWorkers(t, srv, 2)
	for _, v := range []Version{V1, V2} {
		c := newClient(t, srv.Endpoint(), ClientOptions{Version: v})
		for _, tc := range []struct{ svc, arg, want string }{
			{MMIService, "echo", "200"},
			{MMIService, "nosuch", "404"},
			{MMIWorkers, "echo", "2"},
			{MMIWorkers, "nosuch", "0"},
			{"mmi.nosuch", "x", "501"},
		} {
			got, err := c.Call(testCtx(t, 5*time.Second), tc.svc, []byte(tc.arg))
			if err != nil {
				t.Fatal(err)
			}
			expect(t, fmt.Sprintf("%v %s %s", v, tc.svc, tc.arg), join(got), tc.want)
		}
	}
	// Workers may not register in the mmi. namespace.
	w := dialRaw(t, srv.Endpoint())
	w.send("", "MDPW01", "\x01", "mmi.service")
	expect(t, "READY mmi.service", w.recv(), "|MDPW01|\x05")
	if st := srv.Stats(); st.Workers != 2 {
		t.Fatalf("mmi worker registered: %+v", st)
	}
}

func TestFailureReplies(t *testing.T) {
	srv := startBroker(t, Options{RequestTimeout: 150 * time.Millisecond, RequestQueueLimit: 2})
	for _, v := range []Version{V1, V2} {
		c := newClient(t, srv.Endpoint(), ClientOptions{Version: v, Timeout: 5 * time.Second})
		start := time.Now()
		_, err := c.Call(testCtx(t, 5*time.Second), "nobody", []byte("x"))
		var se *ServiceError
		if !errors.As(err, &se) || se.Code != CodeTimeout || se.Service != "nobody" {
			t.Fatalf("%v: want a 504 failure, got %v", v, err)
		}
		if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
			t.Fatalf("%v: timeout failure after %v, want about 150ms", v, d)
		}
	}
	// Wire form, and the queue limit.
	c := dialRaw(t, srv.Endpoint()).optIn()
	for i := 0; i < 3; i++ {
		c.send("", "MDPC01", "nobody", strconv.Itoa(i))
	}
	got := c.recvFrames()
	expect(t, "queue full", join(got[:5]), "|MDPC01|mmi.error|503|nobody")
	for i := 0; i < 2; i++ {
		got = c.recvFrames()
		expect(t, "timeout", join(got[:5]), "|MDPC01|mmi.error|504|nobody")
	}
	c.send("MDPC02", "\x01", "nobody")
	got = c.recvFrames()
	expect(t, "no body (0.2)", join(got[:6]), "MDPC02|\x03|mmi.error|400|nobody|request without a body frame")
	waitStats(t, srv, "empty broker", func(st Stats) bool { return st.Services == 0 && st.Queued == 0 })
}

func TestUnknownWorkerGetsDisconnect(t *testing.T) {
	srv := startBroker(t, Options{})
	w := dialRaw(t, srv.Endpoint())
	w.send("", "MDPW01", "\x04")
	expect(t, "HEARTBEAT before READY", w.recv(), "|MDPW01|\x05")
	w.send("", "MDPW01", "\x04")
	w.silent(50 * time.Millisecond) // said once; the peer must reconnect

	w2 := dialRaw(t, srv.Endpoint())
	w2.send("MDPW02", "\x01", "svc")
	waitWorkers(t, srv, 1)
	w2.send("MDPW02", "\x04", "\x00\x00\x00\x00\x00\x00\x00\x09", "", "x")
	expect(t, "FINAL while idle", w2.recv(), "MDPW02|\x06")
	waitWorkers(t, srv, 0)

	w3 := dialRaw(t, srv.Endpoint())
	w3.send("", "MDPW01", "\x01", "svc")
	waitWorkers(t, srv, 1)
	w3.send("", "MDPW01", "\x01", "svc")
	expect(t, "second READY", w3.recv(), "|MDPW01|\x05")
	waitWorkers(t, srv, 0)
}

// A worker that disconnects mid-request: the request goes to another
// worker at once.
func TestWorkerLostMidRequest(t *testing.T) {
	srv := startBroker(t, Options{})
	bad := dialRaw(t, srv.Endpoint())
	bad.send("", "MDPW01", "\x01", "svc")
	waitWorkers(t, srv, 1)
	c := newClient(t, srv.Endpoint(), ClientOptions{Timeout: 5 * time.Second, Retries: -1})
	done := make(chan string, 1)
	go func() {
		got, err := c.Call(context.Background(), "svc", []byte("job"))
		done <- fmt.Sprintf("%s %v", join(got), err)
	}()
	req := bad.recvFrames()
	expect(t, "request body", string(req[5]), "job")
	goWorker(t, srv.Endpoint(), "svc", echo, WorkerOptions{})
	waitWorkers(t, srv, 2)
	start := time.Now()
	bad.c.Close()
	select {
	case got := <-done:
		expect(t, "reply", got, "job <nil>")
	case <-time.After(5 * time.Second):
		t.Fatal("request not re-dispatched")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("re-dispatch took %v", d)
	}
}

// Workers that keep dying: after MaxAttempts the client gets a 502.
func TestMaxAttempts(t *testing.T) {
	srv := startBroker(t, Options{MaxAttempts: 2})
	c := dialRaw(t, srv.Endpoint()).optIn()
	c.send("", "MDPC01", "svc", "poison")
	for i := 0; i < 2; i++ {
		w := dialRaw(t, srv.Endpoint())
		w.send("", "MDPW01", "\x01", "svc")
		w.recvFrames()
		w.c.Close()
	}
	got := c.recvFrames()
	expect(t, "after 2 lost workers", join(got[:5]), "|MDPC01|mmi.error|502|svc")
}

// A 0.2 worker lost after streaming PARTIALs cannot be replaced without
// repeating them: the client gets a 502 after what it has seen.
func TestWorkerLostMidStream(t *testing.T) {
	srv := startBroker(t, Options{})
	w := dialRaw(t, srv.Endpoint())
	w.send("MDPW02", "\x01", "svc")
	waitWorkers(t, srv, 1)
	c := dialRaw(t, srv.Endpoint()).optIn()
	c.send("MDPC02", "\x01", "svc", "go")
	req := w.recvFrames()
	w.c.Send([][]byte{[]byte("MDPW02"), {3}, req[2], {}, []byte("p1")})
	expect(t, "partial", c.recv(), "MDPC02|\x02|svc|p1")
	w.c.Close()
	got := c.recvFrames()
	expect(t, "failure", join(got[:5]), "MDPC02|\x03|mmi.error|502|svc")
}

func TestHeartbeatExpiry(t *testing.T) {
	srv := startBroker(t, Options{HeartbeatInterval: 50 * time.Millisecond, HeartbeatLiveness: 3})
	// A worker that never heartbeats gets heartbeats, then DISCONNECT.
	// The broker's expiry clock starts when it reads READY, the worker's
	// last message, which is after start; so DISCONNECT, sent once the
	// broker has seen more than 150 ms of silence, arrives after more
	// than 150 ms by this clock too, however slowly the test runs.
	// (Measured from a later instant, such as after waitWorkers, the
	// silence the broker saw can be longer than the test's.)
	w := dialRaw(t, srv.Endpoint())
	start := time.Now()
	w.send("MDPW02", "\x01", "svc")
	var got string
	for got = w.recv(); got == "MDPW02|\x05"; got = w.recv() {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("still heartbeating a silent worker after %v", time.Since(start))
		}
	}
	expect(t, "after silence", got, "MDPW02|\x06")
	if d, window := time.Since(start), 3*50*time.Millisecond; d <= window {
		t.Fatalf("expired after %v of silence, before the liveness window of %v", d, window)
	}
	waitWorkers(t, srv, 0)

	// A busy Go worker keeps heartbeating while its handler runs, so a
	// handler longer than the liveness window is not expired.
	// (A second broker with a liveness window of 500 ms, and a handler
	// taking twice that.)
	srv = startBroker(t, Options{HeartbeatInterval: 100 * time.Millisecond, HeartbeatLiveness: 5})
	var calls atomic.Int32
	slow := func(ctx context.Context, req *Request) [][]byte {
		calls.Add(1)
		time.Sleep(time.Second)
		return req.Body
	}
	goWorker(t, srv.Endpoint(), "slow", slow, WorkerOptions{HeartbeatInterval: 100 * time.Millisecond, HeartbeatLiveness: 20})
	waitWorkers(t, srv, 1)
	c := newClient(t, srv.Endpoint(), ClientOptions{Timeout: 5 * time.Second})
	got2, err := c.Call(testCtx(t, 5*time.Second), "slow", []byte("z"))
	if err != nil || join(got2) != "z" || calls.Load() != 1 {
		t.Fatalf("slow call: %q %v (handler ran %d times)", got2, err, calls.Load())
	}
}

// A Go worker reconnects and registers again with a restarted broker.
func TestWorkerReconnects(t *testing.T) {
	opts := Options{Name: fmt.Sprintf("restart-%d", time.Now().UnixNano()), Logger: quietLogger()}
	srv, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	goWorker(t, srv.Endpoint(), "echo", echo, WorkerOptions{ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond})
	waitWorkers(t, srv, 1)
	srv.Close()
	srv2 := startBroker(t, opts)
	waitWorkers(t, srv2, 1)
	c := newClient(t, srv2.Endpoint(), ClientOptions{})
	if got, err := c.Call(testCtx(t, 5*time.Second), "echo", []byte("again")); err != nil || join(got) != "again" {
		t.Fatalf("after restart: %q %v", got, err)
	}
}

// A client that disconnects takes its waiting requests with it.
func TestClientGoneWhileQueued(t *testing.T) {
	srv := startBroker(t, Options{})
	c := dialRaw(t, srv.Endpoint())
	for i := 0; i < 10; i++ {
		c.send("", "MDPC01", "later", strconv.Itoa(i))
	}
	waitStats(t, srv, "10 queued", func(st Stats) bool { return st.Queued == 10 })
	c.c.Close()
	waitStats(t, srv, "queue emptied", func(st Stats) bool { return st.Queued == 0 && st.Services == 0 && st.Peers == 0 })
}

// Clients are served round robin: a client with a long backlog does not
// hold up another's request.
func TestFairQueuing(t *testing.T) {
	srv := startBroker(t, Options{})
	heavy, light := dialRaw(t, srv.Endpoint()), dialRaw(t, srv.Endpoint())
	for i := 0; i < 50; i++ {
		heavy.send("", "MDPC01", "svc", strconv.Itoa(i))
	}
	waitStats(t, srv, "backlog", func(st Stats) bool { return st.Queued == 50 })
	light.send("", "MDPC01", "svc", "light")
	waitStats(t, srv, "light queued", func(st Stats) bool { return st.Queued == 51 })
	w := dialRaw(t, srv.Endpoint())
	w.send("", "MDPW01", "\x01", "svc")
	var order []string
	for i := 0; i < 3; i++ {
		req := w.recvFrames()
		order = append(order, string(req[5]))
		w.c.Send([][]byte{{}, []byte("MDPW01"), {3}, req[3], {}, req[5]})
	}
	expect(t, "service order", fmt.Sprint(order), "[0 light 1]")
	expect(t, "light reply", light.recv(), "|MDPC01|svc|light")
}

func TestStreamingGo(t *testing.T) {
	srv := startBroker(t, Options{})
	const n = 300
	goWorker(t, srv.Endpoint(), "count", func(ctx context.Context, req *Request) [][]byte {
		for i := 0; i < n; i++ {
			if err := req.Partial([]byte(strconv.Itoa(i))); err != nil {
				t.Error(err)
			}
		}
		return [][]byte{[]byte("done")}
	}, WorkerOptions{Version: V2})
	waitWorkers(t, srv, 1)
	c := newClient(t, srv.Endpoint(), ClientOptions{Version: V2})
	next := 0
	final, err := c.Stream(testCtx(t, 5*time.Second), "count", nil, func(b [][]byte) {
		if join(b) != strconv.Itoa(next) {
			t.Fatalf("partial %d: got %q", next, join(b))
		}
		next++
	})
	if err != nil || join(final) != "done" || next != n {
		t.Fatalf("stream: final %q err %v, %d partials", final, err, next)
	}
	// A 0.1 client gets only the FINAL.
	c1 := newClient(t, srv.Endpoint(), ClientOptions{Version: V1})
	if got, err := c1.Call(testCtx(t, 5*time.Second), "count"); err != nil || join(got) != "done" {
		t.Fatalf("0.1 client of a streaming worker: %q %v", got, err)
	}
	// A 0.1 worker cannot stream.
	goWorker(t, srv.Endpoint(), "v1", func(ctx context.Context, req *Request) [][]byte {
		return [][]byte{[]byte(fmt.Sprint(req.Partial([]byte("x"))))}
	}, WorkerOptions{Version: V1})
	if got, err := c1.Call(testCtx(t, 5*time.Second), "v1"); err != nil || join(got) != ErrNoPartials.Error() {
		t.Fatalf("Partial on 0.1: %q %v", got, err)
	}
}

func TestAsyncClient(t *testing.T) {
	srv := startBroker(t, Options{})
	goWorker(t, srv.Endpoint(), "echo", echo, WorkerOptions{Version: V2})
	for _, v := range []Version{V1, V2} {
		c := newClient(t, srv.Endpoint(), ClientOptions{Version: v})
		ctx := testCtx(t, 5*time.Second)
		for i := 0; i < 20; i++ {
			if err := c.Send(ctx, "echo", []byte(strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Send(ctx, "mmi.nope", []byte("x")); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for i := 0; i < 21; i++ {
			r, err := c.Recv(ctx)
			if err != nil || !r.Final {
				t.Fatalf("%v: recv %d: %+v %v", v, i, r, err)
			}
			seen[r.Service+":"+join(r.Body)] = true
		}
		if len(seen) != 21 || !seen["mmi.nope:501"] || !seen["echo:19"] {
			t.Fatalf("%v: replies %v", v, seen)
		}
	}
}

// Many asynchronous requests of one to three body frames, more than a
// client's and a worker's blocks of frame lists hold, each answered with
// its own body by a handler that appends to the request's body list.
func TestAsyncClientManyRequests(t *testing.T) {
	srv := startBroker(t, Options{})
	for _, v := range []Version{V1, V2} {
		goWorker(t, srv.Endpoint(), "echo-"+v.String(), func(ctx context.Context, req *Request) [][]byte {
			n := len(req.Body)
			return append(req.Body, []byte("+"))[:n]
		}, WorkerOptions{Version: v})
		c := newClient(t, srv.Endpoint(), ClientOptions{Version: v})
		ctx := testCtx(t, 10*time.Second)
		const n = 5 * listBlockSize
		for i := range n {
			body := make([][]byte, 1+i%3)
			for j := range body {
				body[j] = []byte(fmt.Sprintf("%d.%d", i, j))
			}
			if err := c.Send(ctx, "echo-"+v.String(), body...); err != nil {
				t.Fatal(err)
			}
		}
		for i := range n {
			r, err := c.Recv(ctx)
			if err != nil {
				t.Fatalf("%v: recv %d: %v", v, i, err)
			}
			want := make([]string, 1+i%3) // one worker: replies in order
			for j := range want {
				want[j] = fmt.Sprintf("%d.%d", i, j)
			}
			if got := join(r.Body); got != strings.Join(want, "|") {
				t.Fatalf("%v: reply %d is %q, want %q", v, i, got, strings.Join(want, "|"))
			}
		}
	}
}

// 1,000 requests in flight at once from 50 Go clients, 4 Go workers.
func TestConcurrentGo(t *testing.T) {
	srv := startBroker(t, Options{})
	for i := 0; i < 4; i++ {
		goWorker(t, srv.Endpoint(), "echo", echo, WorkerOptions{Version: Version(1 + i%2)})
	}
	waitWorkers(t, srv, 4)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for k := 0; k < 50; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			c := newClient(t, srv.Endpoint(), ClientOptions{Version: Version(1 + k%2)})
			ctx := testCtx(t, 20*time.Second)
			for i := 0; i < 20; i++ {
				if err := c.Send(ctx, "echo", []byte(fmt.Sprintf("%d-%d", k, i))); err != nil {
					errs <- err
					return
				}
			}
			seen := map[string]bool{}
			for i := 0; i < 20; i++ {
				r, err := c.Recv(ctx)
				if err != nil {
					errs <- err
					return
				}
				seen[join(r.Body)] = true
			}
			for i := 0; i < 20; i++ {
				if !seen[fmt.Sprintf("%d-%d", k, i)] {
					errs <- fmt.Errorf("client %d: reply %d missing", k, i)
					return
				}
			}
		}(k)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// A client with more than MaxPending requests outstanding is no longer
// read until replies go out; everything is still answered.
func TestClientBackpressure(t *testing.T) {
	srv := startBroker(t, Options{MaxPending: 10})
	c := dialRaw(t, srv.Endpoint())
	// Requests larger than the transport's read buffer come one per
	// event batch, so what is read past the pause is bounded by the
	// event buffer in messages: 256 batches, the one in hand and a few
	// in kernel buffers, well below n.
	const n = 400
	body := strings.Repeat("x", 64<<10)
	for i := 0; i < n; i++ {
		c.send("", "MDPC01", "svc", strconv.Itoa(i), body)
	}
	time.Sleep(100 * time.Millisecond)
	if st := srv.Stats(); st.Queued > 10+256+10 {
		t.Fatalf("broker read past MaxPending: %+v", st)
	}
	goWorker(t, srv.Endpoint(), "svc", echo, WorkerOptions{})
	for i := 0; i < n; i++ {
		want := "|MDPC01|svc|" + strconv.Itoa(i) + "|" + body
		if got := c.recv(); got != want {
			t.Fatalf("reply %d: %d bytes starting %.40q, want %d bytes starting %.40q", i, len(got), got, len(want), want)
		}
	}
}

func TestTCPEndpoint(t *testing.T) {
	srv := startBroker(t, Options{Endpoint: "tcp://127.0.0.1:0"})
	if !strings.HasPrefix(srv.Endpoint(), "tcp://127.0.0.1:") || strings.HasSuffix(srv.Endpoint(), ":0") {
		t.Fatalf("endpoint %q", srv.Endpoint())
	}
	goWorker(t, srv.Endpoint(), "echo", echo, WorkerOptions{Version: V2})
	c := newClient(t, srv.Endpoint(), ClientOptions{Version: V1})
	if got, err := c.Call(testCtx(t, 5*time.Second), "echo", []byte("over tcp")); err != nil || join(got) != "over tcp" {
		t.Fatalf("%q %v", got, err)
	}
}

// RFC 7 and 18 define no failure reply: a client that has not asked for
// them (MMIFailures) gets nothing for a request the broker cannot answer,
// in any of the failure cases, and can switch them on and off.
func TestNoFailureRepliesUnasked(t *testing.T) {
	srv := startBroker(t, Options{RequestTimeout: 100 * time.Millisecond, RequestQueueLimit: 1, MaxAttempts: 1})
	c := dialRaw(t, srv.Endpoint())
	c.send("", "MDPC01", "nobody", "1") // times out (504)
	c.send("", "MDPC01", "nobody", "2") // queue full (503)
	c.send("MDPC02", "\x01", "nobody")  // no body (400)
	w := dialRaw(t, srv.Endpoint())
	w.send("MDPW02", "\x01", "svc")
	waitWorkers(t, srv, 1)
	c.send("MDPC02", "\x01", "svc", "x")
	w.recvFrames()
	w.c.Close() // worker lost, no attempts left (502)
	waitStats(t, srv, "requests ended", func(st Stats) bool { return st.Queued == 0 && st.InFlight == 0 && st.Workers == 0 })
	c.silent(300 * time.Millisecond)

	c.send("MDPC02", "\x01", MMIFailures, "maybe")
	expect(t, "bad opt-in", c.recv(), "MDPC02|\x03|mmi.failures|400")
	c.optIn()
	c.send("", "MDPC01", "nobody", "3")
	got := c.recvFrames()
	expect(t, "after opt-in", join(got[:5]), "|MDPC01|mmi.error|504|nobody")
	c.send("", "MDPC01", MMIFailures, "off")
	expect(t, "opt-out", c.recv(), "|MDPC01|mmi.failures|200")
	c.send("", "MDPC01", "nobody", "4")
	c.silent(300 * time.Millisecond)
}

package majordomo

// The peers people already run: libzmq clients and workers that behave
// like the ZeroMQ Guide's mdcliapi, mdcliapi2, mdclient2 and mdwrkapi
// (testdata/zguide_peers.py), plus a worker that hangs while connected.
// Each test fails against a broker that sends failure replies unasked,
// expires busy workers after the idle heartbeat window, or stops reading
// a client that has 1,000 replies waiting.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func zguidePeer(t testing.TB, mode, endpoint, service string, args ...string) *pyProc {
	t.Helper()
	return startPy(t, "zguide_peers.py", append([]string{mode, endpoint, service}, args...)...)
}

type zguideResult struct {
	Reply        []string `json:"reply"`
	Attempts     int      `json:"attempts"`
	Replies      int      `json:"replies"`
	Sent         int      `json:"sent"`
	BlockedAfter *int     `json:"blocked_after"`
}

// gotLines drains what p printed so far (waiting up to d for more) and
// counts the lines starting with prefix.
func gotLines(p *pyProc, prefix string, d time.Duration) int {
	n := 0
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return n
			}
			if strings.HasPrefix(l, prefix) {
				n++
			}
		case <-time.After(d):
			return n
		}
	}
}

// mdcliapi asserts that a reply names the service it asked for. For a
// service nobody serves it must get no reply (it times out, retries and
// gives up, as the zguide intends), not a crash on an mmi.error reply.
func TestZguideMdcliapi(t *testing.T) {
	pythonZMQ(t)
	srv := startBroker(t, Options{RequestTimeout: 200 * time.Millisecond})
	ep := srv.Endpoint()
	goWorker(t, ep, "echo", echo, WorkerOptions{})
	waitWorkers(t, srv, 1)

	var got zguideResult
	zguidePeer(t, "mdcliapi", ep, "nosuch", "--timeout", "500", "--retries", "3").result(&got, 30*time.Second)
	if got.Reply != nil || got.Attempts != 3 {
		t.Fatalf("mdcliapi to a service without workers: %+v, want no reply after 3 attempts", got)
	}
	got = zguideResult{}
	zguidePeer(t, "mdcliapi", ep, "echo", "hello", "", "world").result(&got, 30*time.Second)
	if strings.Join(got.Reply, "|") != "hello||world" || got.Attempts != 1 {
		t.Fatalf("mdcliapi to echo: %+v", got)
	}
}

// mdcliapi2 does not check the service frame: a failure reply would be
// taken as the service's answer.
func TestZguideMdcliapi2(t *testing.T) {
	pythonZMQ(t)
	srv := startBroker(t, Options{RequestTimeout: 200 * time.Millisecond})
	ep := srv.Endpoint()
	var got zguideResult
	zguidePeer(t, "mdcliapi2", ep, "nosuch", "--timeout", "1500").result(&got, 30*time.Second)
	if got.Reply != nil {
		t.Fatalf("mdcliapi2 took %q as the answer of service nosuch", got.Reply)
	}
	goWorker(t, ep, "echo", echo, WorkerOptions{})
	waitWorkers(t, srv, 1)
	got = zguideResult{}
	zguidePeer(t, "mdcliapi2", ep, "echo", "x").result(&got, 30*time.Second)
	if strings.Join(got.Reply, "|") != "x" {
		t.Fatalf("mdcliapi2 to echo: %+v", got)
	}
}

// mdwrkapi sends nothing while its application handles a request. A job
// of many liveness windows is served once, by the worker that took it,
// while another idle worker of the service waits.
func TestZguideMdwrkapi(t *testing.T) {
	pythonZMQ(t)
	srv := startBroker(t, Options{HeartbeatInterval: 200 * time.Millisecond, HeartbeatLiveness: 3})
	ep := srv.Endpoint()
	hb := []string{"--heartbeat", "200", "--job", "2"}
	a := zguidePeer(t, "mdwrkapi", ep, "slow", hb...)
	b := zguidePeer(t, "mdwrkapi", ep, "slow", hb...)
	a.expectLine("ready", 10*time.Second)
	b.expectLine("ready", 10*time.Second)
	waitWorkers(t, srv, 2)
	var got zguideResult
	zguidePeer(t, "mdcliapi", ep, "slow", "job", "--timeout", "15000", "--retries", "1").result(&got, 30*time.Second)
	if strings.Join(got.Reply, "|") != "job" {
		t.Fatalf("mdcliapi to a busy-silent worker: %+v", got)
	}
	if runs := gotLines(a, "got", 200*time.Millisecond) + gotLines(b, "got", 200*time.Millisecond); runs != 1 {
		t.Fatalf("the job ran %d times, want once", runs)
	}
	if st := srv.Stats(); st.Workers != 2 {
		t.Fatalf("mdwrkapi workers expired: %+v", st)
	}
}

// mdclient2 sends 20,000 requests before reading any reply; a plain
// DEALER does the same with a send timeout, so it reports a block rather
// than hanging.
func TestZguidePipelining(t *testing.T) {
	pythonZMQ(t)
	srv := startBroker(t, Options{})
	ep := srv.Endpoint()
	goWorker(t, ep, "echo", echo, WorkerOptions{})
	goWorker(t, ep, "echo", echo, WorkerOptions{Version: V2})
	waitWorkers(t, srv, 2)
	a := zguidePeer(t, "mdclient2", ep, "echo", "--requests", "20000", "--timeout", "30000")
	b := zguidePeer(t, "flood", ep, "echo", "--requests", "20000", "--timeout", "30000")
	var ga, gb zguideResult
	a.result(&ga, 120*time.Second)
	b.result(&gb, 120*time.Second)
	// On a shortfall the broker's snapshot tells where the rest went:
	// requests it never accepted (lost before it, as on a reconnection),
	// failed (by code), or still queued or held by a worker.
	brokerState := func() string {
		snap, err := srv.Snapshot(testCtx(t, 5*time.Second), 10)
		if err != nil {
			return err.Error()
		}
		return fmt.Sprintf("%+v", snap)
	}
	if ga.Replies != 20000 {
		t.Errorf("mdclient2: %d replies of 20000; broker %s", ga.Replies, brokerState())
	}
	if gb.BlockedAfter != nil || gb.Sent != 20000 || gb.Replies != 20000 {
		t.Errorf("DEALER sending 20000 before reading: %+v; broker %s", gb, brokerState())
	}
	waitStats(t, srv, "idle broker", func(st Stats) bool { return st.Queued == 0 && st.InFlight == 0 })
}

// A worker that stays connected and says nothing: idle, it is expired
// after the liveness window; holding a request, it keeps it (no other
// worker gets it) until BusyTimeout, and then the request fails.
func TestZguideHungWorker(t *testing.T) {
	pythonZMQ(t)
	const busy = 2 * time.Second
	srv := startBroker(t, Options{HeartbeatInterval: 100 * time.Millisecond, HeartbeatLiveness: 3, BusyTimeout: busy})
	ep := srv.Endpoint()

	zguidePeer(t, "hung", ep, "idle").expectLine("ready", 10*time.Second)
	waitWorkers(t, srv, 1)
	waitWorkers(t, srv, 0) // expired, although connected

	hung := zguidePeer(t, "hung", ep, "job")
	hung.expectLine("ready", 10*time.Second)
	waitWorkers(t, srv, 1)
	c := newClient(t, ep, ClientOptions{Timeout: 30 * time.Second, Retries: -1})
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := c.Call(context.Background(), "job", []byte("once"))
		done <- err
	}()
	hung.expectLine("got once", 10*time.Second)
	var backup atomic.Int32
	goWorker(t, ep, "job", func(ctx context.Context, req *Request) [][]byte {
		backup.Add(1)
		return req.Body
	}, WorkerOptions{HeartbeatInterval: 100 * time.Millisecond})
	waitWorkers(t, srv, 2)
	time.Sleep(busy / 2) // several liveness windows
	if st := srv.Stats(); st.Workers != 2 || st.InFlight != 1 || backup.Load() != 0 {
		t.Fatalf("before the busy timeout: %+v, request given to another worker %d times", st, backup.Load())
	}
	var se *ServiceError
	select {
	case err := <-done:
		if !errors.As(err, &se) || se.Code != CodeTimeout {
			t.Fatalf("call to the hung worker: %v, want a 504 failure", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no failure after the busy timeout")
	}
	if d := time.Since(start); d < busy {
		t.Fatalf("failed after %v, before the busy timeout %v", d, busy)
	}
	if backup.Load() != 0 {
		t.Fatalf("request ran on another worker after the busy timeout")
	}
	waitWorkers(t, srv, 1)
}

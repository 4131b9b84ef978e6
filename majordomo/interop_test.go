package majordomo

// Interop tests against real libzmq peers: Majordomo clients and workers
// written in Python (pyzmq) from the RFC texts, in testdata/.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"github.com/zbroker/zbroker/internal/interop"
	"github.com/zbroker/zbroker/internal/testsupport"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pythonZMQ returns a python that can import zmq, or skips the test
// (fails it under CI=true or ZBROKER_INTEROP=require).
func pythonZMQ(t testing.TB) string { return interop.Python(t) }

// pyProc is a running script; its stdout lines arrive on lines.
type pyProc struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	lines  chan string
	stderr *testsupport.Buffer
	exited chan struct{}
	err    error
}

func startPy(t testing.TB, script string, args ...string) *pyProc {
	t.Helper()
	py := pythonZMQ(t)
	cmd := exec.Command(py, append([]string{"testdata/" + script}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &pyProc{t: t, name: script + " " + strings.Join(args, " "), cmd: cmd,
		lines: make(chan string, 1000), stderr: &testsupport.Buffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default: // nobody is reading this chatty script: never block it
			}
		}
		p.err = cmd.Wait()
		close(p.lines)
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			if s := p.stderr.String(); s != "" {
				t.Logf("stderr of %s:\n%s", p.name, s)
			}
		}
	})
	return p
}

func (p *pyProc) kill() {
	select {
	case <-p.exited:
	default:
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	}
}

// expectLine waits for the next line and checks it starts with prefix.
func (p *pyProc) expectLine(prefix string, within time.Duration) string {
	p.t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			p.t.Fatalf("%s exited (%v) before printing %q; stderr:\n%s", p.name, p.err, prefix, p.stderr.String())
		}
		if !strings.HasPrefix(l, prefix) {
			p.t.Fatalf("%s printed %q, want %q...", p.name, l, prefix)
		}
		return l
	case <-time.After(within):
		p.t.Fatalf("%s printed no %q within %v; stderr:\n%s", p.name, prefix, within, p.stderr.String())
		return ""
	}
}

// result waits for the script to finish successfully and decodes its
// last line as JSON into v.
func (p *pyProc) result(v any, within time.Duration) {
	p.t.Helper()
	var last string
	deadline := time.After(within)
	for {
		select {
		case l, ok := <-p.lines:
			if ok {
				last = l
				continue
			}
			if p.err != nil {
				p.t.Fatalf("%s failed: %v\n%s", p.name, p.err, p.stderr.String())
			}
			if v != nil {
				if err := json.Unmarshal([]byte(last), v); err != nil {
					p.t.Fatalf("%s: output %q: %v", p.name, last, err)
				}
			}
			return
		case <-deadline:
			p.t.Fatalf("%s did not finish within %v; stderr:\n%s", p.name, within, p.stderr.String())
		}
	}
}

type callResult struct {
	Service  string     `json:"service"`
	Body     []string   `json:"body"`
	Partials [][]string `json:"partials"`
}

func pyWorker(t testing.TB, endpoint string, v Version, service string, args ...string) *pyProc {
	t.Helper()
	p := startPy(t, "mdp_worker.py", append([]string{endpoint, fmt.Sprint(int(v)), service}, args...)...)
	p.expectLine("ready", 10*time.Second)
	return p
}

func pyClient(t testing.TB, endpoint string, v Version, mode, service string, args ...string) *pyProc {
	t.Helper()
	return startPy(t, "mdp_client.py", append([]string{endpoint, fmt.Sprint(int(v)), mode, service}, args...)...)
}

// Round trips, both versions, every pairing of python and Go clients and
// workers, REQ and DEALER python clients.
func TestInteropRoundTrip(t *testing.T) {
	pythonZMQ(t)
	srv := startBroker(t, Options{})
	ep := srv.Endpoint()
	pyWorker(t, ep, V1, "py1")
	pyWorker(t, ep, V2, "py2")
	goWorker(t, ep, "go1", echo, WorkerOptions{Version: V1})
	goWorker(t, ep, "go2", echo, WorkerOptions{Version: V2})
	waitWorkers(t, srv, 4)

	type run struct {
		name string
		p    *pyProc
	}
	var runs []run
	for _, svc := range []string{"py1", "py2", "go1", "go2"} {
		runs = append(runs,
			run{"REQ 0.1 → " + svc, pyClient(t, ep, V1, "call", svc, "hello", "", "multi part", "--socket", "req")},
			run{"DEALER 0.1 → " + svc, pyClient(t, ep, V1, "call", svc, "hello", "", "multi part", "--socket", "dealer")},
			run{"DEALER 0.2 → " + svc, pyClient(t, ep, V2, "call", svc, "hello", "", "multi part")})
	}
	for _, r := range runs {
		var got callResult
		r.p.result(&got, 15*time.Second)
		svc := r.name[strings.LastIndex(r.name, " ")+1:]
		if got.Service != svc || strings.Join(got.Body, "|") != "hello||multi part" || len(got.Partials) != 0 {
			t.Errorf("%s: got %+v", r.name, got)
		}
	}
	for _, v := range []Version{V1, V2} {
		c := newClient(t, ep, ClientOptions{Version: v})
		for _, svc := range []string{"py1", "py2"} {
			got, err := c.Call(testCtx(t, 10*time.Second), svc, []byte("from go"), []byte{0, 1, 2})
			if err != nil || join(got) != "from go|\x00\x01\x02" {
				t.Errorf("Go %v client → %s: %q %v", v, svc, got, err)
			}
		}
	}
}

// Three libzmq workers share the load of one service.
func TestInteropLoadBalancing(t *testing.T) {
	pythonZMQ(t)
	srv := startBroker(t, Options{})
	ep := srv.Endpoint()
	for _, id := range []string{"a", "b", "c"} {
		pyWorker(t, ep, V1, "lb", "--mode", "tag", "--id", id)
	}
	waitWorkers(t, srv, 3)
	var got struct{ First map[string]int }
	pyClient(t, ep, V1, "seq", "lb", "30").result(&got, 20*time.Second)
	// Sequential requests go to the least recently used worker: a strict
	// rotation.
	if len(got.First) != 3 || got.First["a"] != 10 || got.First["b"] != 10 || got.First["c"] != 10 {
		t.Fatalf("requests per worker: %v, want 10 each", got.First)
	}
	// Go client, 0.2, to 0.1 workers: all three used too.
	c := newClient(t, ep, ClientOptions{Version: V2})
	seen := map[string]int{}
	for i := 0; i < 9; i++ {
		b, err := c.Call(testCtx(t, 10*time.Second), "lb", []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		seen[string(b[0])]++
	}
	if len(seen) != 3 {
		t.Fatalf("Go client requests per worker: %v", seen)
	}
}

// A worker killed (SIGKILL) mid-request: the broker notices the
// disconnection at once and another worker serves the request, well
// within the heartbeat liveness window (default 2.5 s × 3).
func TestInteropWorkerKilled(t *testing.T) {
	pythonZMQ(t)
	srv := startBroker(t, Options{})
	ep := srv.Endpoint()
	for _, v := range []Version{V1, V2} {
		t.Run(v.String(), func(t *testing.T) {
			svc := fmt.Sprintf("fragile%d", v)
			victim := pyWorker(t, ep, v, svc, "--mode", "hang")
			waitStats(t, srv, "victim registered", func(st Stats) bool { return st.IdleWorkers == 1 })
			client := pyClient(t, ep, v, "call", svc, "important")
			victim.expectLine("got important", 10*time.Second)
			pyWorker(t, ep, v, svc, "--mode", "tag", "--id", "rescuer")
			waitStats(t, srv, "rescuer registered", func(st Stats) bool { return st.Workers == 2 && st.IdleWorkers == 1 })
			killed := time.Now()
			victim.kill()
			var got callResult
			client.result(&got, 10*time.Second)
			took := time.Since(killed)
			if strings.Join(got.Body, "|") != "rescuer|important" {
				t.Fatalf("reply %+v", got)
			}
			if took > 2*time.Second {
				t.Fatalf("request re-dispatched %v after the kill; the liveness window is 7.5s", took)
			}
			t.Logf("served by another worker %v after SIGKILL", took)
			waitStats(t, srv, "victim gone", func(st Stats) bool { return st.Workers == 1 })
			srv.Stats()
		})
		// Drain this version's rescuer before the next subtest.
		waitStats(t, srv, "subtest cleanup", func(st Stats) bool { return st.Workers == 0 })
	}
}

// Heartbeat expiry with short intervals: a libzmq worker that never
// heartbeats is expired and told DISCONNECT; a worker that goes silent
// while holding a request keeps it until BusyTimeout, then is expired and
// the request fails (it is not given to another worker).
func TestInteropHeartbeatExpiry(t *testing.T) {
	pythonZMQ(t)
	// Short intervals, but a liveness with room for a loaded machine: a
	// python worker's heartbeats were seen more than 600 ms apart under
	// load, which expired a healthy worker at liveness 3. The python
	// workers are also lenient about the broker's heartbeats.
	const ivl, liveness, busy = 200 * time.Millisecond, 10, 3 * time.Second
	const expiry = ivl * liveness
	srv := startBroker(t, Options{HeartbeatInterval: ivl, HeartbeatLiveness: liveness, BusyTimeout: busy})
	ep := srv.Endpoint()
	hb := []string{"--hb-ms", "200", "--liveness", "40"}

	// The silent worker is last heard at its READY, which the broker took
	// after the last look that did not see it yet: the expiry is timed
	// from that look, as the look that saw it may come late under load.
	notYet := time.Now()
	silent := pyWorker(t, ep, V1, "quiet", append(hb, "--mode", "silent", "--exit-on-disconnect")...)
	for deadline := time.Now().Add(10 * time.Second); ; {
		look := time.Now()
		if srv.Stats().Workers == 1 {
			break
		}
		if look.After(deadline) {
			t.Fatalf("silent worker not registered: %+v", srv.Stats())
		}
		notYet = look
		time.Sleep(5 * time.Millisecond)
	}
	seen := time.Now()
	silent.expectLine("disconnect", expiry+10*time.Second)
	if d := time.Since(notYet); d < expiry {
		t.Fatalf("silent worker expired %v after its READY at most, want at least %v", d, expiry)
	}
	// A hang guard: about expiry plus a tick, with room for load.
	if d := time.Since(seen); d > expiry+3*time.Second {
		t.Fatalf("silent worker expired %v after it was seen, want about %v", d, expiry)
	}
	waitWorkers(t, srv, 0)

	// A 0.2 worker takes the request and goes silent.
	mute := pyWorker(t, ep, V2, "job", append(hb, "--mode", "mute", "--exit-on-disconnect")...)
	waitWorkers(t, srv, 1)
	// The request is assigned after the client starts: timing from here
	// never starts late, so the full busy timeout can be required.
	start := time.Now()
	client := pyClient(t, ep, V2, "call", "job", "payload", "--failures")
	mute.expectLine("got payload", 10*time.Second)
	pyWorker(t, ep, V2, "job", append(hb, "--mode", "tag", "--id", "healthy")...)
	mute.expectLine("disconnect", busy+10*time.Second)
	if d := time.Since(start); d < busy {
		t.Fatalf("busy worker expired after %v, before the busy timeout %v", d, busy)
	}
	var got callResult
	client.result(&got, 10*time.Second)
	if got.Service != ErrorService || len(got.Body) != 3 || got.Body[0] != CodeTimeout {
		t.Fatalf("reply %+v, want a 504 failure", got)
	}
	// The healthy worker heartbeats and stays registered for longer than
	// the expiry.
	time.Sleep(expiry + ivl)
	if st := srv.Stats(); st.Workers != 1 {
		t.Fatalf("heartbeating worker expired: %+v", st)
	}
}

func TestInteropMMI(t *testing.T) {
	pythonZMQ(t)
	srv := startBroker(t, Options{})
	ep := srv.Endpoint()
	pyWorker(t, ep, V1, "echo")
	pyWorker(t, ep, V2, "echo")
	waitWorkers(t, srv, 2)
	cases := []struct{ svc, arg, want string }{
		{"mmi.service", "echo", "200"},
		{"mmi.service", "absent", "404"},
		{"mmi.workers", "echo", "2"},
		{"mmi.workers", "absent", "0"},
		{"mmi.frobnicate", "echo", "501"},
	}
	var procs []*pyProc
	for _, v := range []Version{V1, V2} {
		for _, c := range cases {
			procs = append(procs, pyClient(t, ep, v, "call", c.svc, c.arg))
		}
	}
	for i, p := range procs {
		c := cases[i%len(cases)]
		var got callResult
		p.result(&got, 15*time.Second)
		if got.Service != c.svc || strings.Join(got.Body, "|") != c.want {
			t.Errorf("%s: got %+v, want %s", p.name, got, c.want)
		}
	}
}

// MDP/0.2 streaming: many PARTIALs then the FINAL, in order, between
// libzmq peers and with the Go client and worker.
func TestInteropStreaming(t *testing.T) {
	pythonZMQ(t)
	srv := startBroker(t, Options{})
	ep := srv.Endpoint()
	const n = 500
	pyWorker(t, ep, V2, "pystream", "--mode", "stream", "--partials", fmt.Sprint(n))
	goWorker(t, ep, "gostream", func(ctx context.Context, req *Request) [][]byte {
		for i := 0; i < n; i++ {
			req.Partial([]byte(fmt.Sprint(i)))
		}
		return [][]byte{[]byte("done")}
	}, WorkerOptions{Version: V2})
	waitWorkers(t, srv, 2)
	a := pyClient(t, ep, V2, "stream", "pystream", fmt.Sprint(n))
	b := pyClient(t, ep, V2, "stream", "gostream", fmt.Sprint(n))
	for _, p := range []*pyProc{a, b} {
		var got struct {
			Body     []string
			Partials int
		}
		p.result(&got, 15*time.Second)
		if got.Partials != n || strings.Join(got.Body, "|") != "done" {
			t.Errorf("%s: %+v", p.name, got)
		}
	}
	c := newClient(t, ep, ClientOptions{Version: V2})
	next := 0
	final, err := c.Stream(testCtx(t, 10*time.Second), "pystream", [][]byte{[]byte("go")}, func(b [][]byte) {
		if join(b) != fmt.Sprint(next) {
			t.Errorf("partial %d: %q", next, join(b))
		}
		next++
	})
	if err != nil || join(final) != "done" || next != n {
		t.Fatalf("Go client stream: %q %v after %d partials", final, err, next)
	}
	// An MDP/0.1 libzmq client of a streaming worker gets the FINAL only.
	var got callResult
	pyClient(t, ep, V1, "call", "pystream", "x").result(&got, 15*time.Second)
	if strings.Join(got.Body, "|") != "done" {
		t.Fatalf("0.1 client of a stream: %+v", got)
	}
}

// Garbage from some peers does not disturb the others.
func TestInteropGarbage(t *testing.T) {
	pythonZMQ(t)
	srv := startBroker(t, Options{})
	ep := srv.Endpoint()
	pyWorker(t, ep, V1, "echo")
	goWorker(t, ep, "echo", echo, WorkerOptions{Version: V2})
	waitWorkers(t, srv, 2)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var calls int
	var callErr error
	wg.Add(1)
	go func() { // a well-behaved client the whole time
		defer wg.Done()
		c := newClient(t, ep, ClientOptions{Version: V2, Timeout: 5 * time.Second, Retries: -1})
		for i := 0; ctx.Err() == nil; i++ {
			want := fmt.Sprint(i)
			got, err := c.Call(context.Background(), "echo", []byte(want))
			if err != nil || join(got) != want {
				callErr = fmt.Errorf("call %d: %q %v", i, got, err)
				return
			}
			calls++
		}
	}()
	g := startPy(t, "mdp_garbage.py", ep, "echo", "20")
	// Raw non-ZMTP bytes and a truncated greeting, too.
	for _, junk := range []string{"GET / HTTP/1.0\r\n\r\n", "\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f\x03"} {
		if nc, err := dialUnix(ep); err == nil {
			nc.Write([]byte(junk))
			nc.Close()
		}
	}
	g.expectLine("ok", 20*time.Second)
	var ok callResult
	pyClient(t, ep, V1, "call", "echo", "after").result(&ok, 15*time.Second)
	cancel()
	wg.Wait()
	if callErr != nil {
		t.Fatal(callErr)
	}
	if calls == 0 || strings.Join(ok.Body, "|") != "after" {
		t.Fatalf("%d calls during the garbage, final reply %+v", calls, ok)
	}
	if st := srv.Stats(); st.Workers != 2 {
		t.Fatalf("good workers lost: %+v", st)
	}
	t.Logf("%d round trips while the garbage was sent", calls)
}

// 1,000 concurrent requests from libzmq clients (both versions at once)
// through three libzmq workers: every one answered exactly once.
func TestInteropConcurrent(t *testing.T) {
	pythonZMQ(t)
	srv := startBroker(t, Options{})
	ep := srv.Endpoint()
	pyWorker(t, ep, V1, "echo")
	pyWorker(t, ep, V2, "echo")
	pyWorker(t, ep, V1, "echo")
	waitWorkers(t, srv, 3)
	a := pyClient(t, ep, V1, "many", "echo", "1000")
	b := pyClient(t, ep, V2, "many", "echo", "1000")
	for _, p := range []*pyProc{a, b} {
		var got struct{ Replies int }
		p.result(&got, 30*time.Second)
		if got.Replies != 1000 {
			t.Fatalf("%s: %d replies", p.name, got.Replies)
		}
	}
	waitStats(t, srv, "idle broker", func(st Stats) bool { return st.Queued == 0 && st.InFlight == 0 })
}

// A request for a service without workers waits RequestTimeout, then gets
// the failure reply, which libzmq clients that asked for failure replies
// see as service "mmi.error" (those that did not: see TestZguideMdcliapi).
func TestInteropNoWorker(t *testing.T) {
	pythonZMQ(t)
	srv := startBroker(t, Options{RequestTimeout: 300 * time.Millisecond})
	ep := srv.Endpoint()
	start := time.Now()
	a := pyClient(t, ep, V1, "call", "nobody", "hello", "--failures")
	b := pyClient(t, ep, V2, "call", "nobody", "hello", "--failures")
	for _, p := range []*pyProc{a, b} {
		var got callResult
		p.result(&got, 15*time.Second)
		if got.Service != ErrorService || len(got.Body) != 3 || got.Body[0] != CodeTimeout || got.Body[1] != "nobody" {
			t.Fatalf("%s: %+v", p.name, got)
		}
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("failed after %v, before the request timeout", d)
	}
	// A worker arriving within the timeout serves the waiting request (a
	// broker with room for a python worker's start on a loaded machine).
	srv = startBroker(t, Options{RequestTimeout: 30 * time.Second})
	ep = srv.Endpoint()
	c := pyClient(t, ep, V1, "call", "late", "hi")
	waitStats(t, srv, "request queued", func(st Stats) bool { return st.Queued == 1 })
	pyWorker(t, ep, V1, "late")
	var got callResult
	c.result(&got, 15*time.Second)
	if got.Service != "late" || strings.Join(got.Body, "|") != "hi" {
		t.Fatalf("late worker: %+v", got)
	}
}

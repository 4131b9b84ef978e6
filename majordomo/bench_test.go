package majordomo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/gcfloor"
	"github.com/zbroker/zbroker/zmtp"
)

// Throughput of request-reply through the broker, in process: one client
// keeping a window of requests in flight (asynchronous Send/Recv), N echo
// workers, 64-byte bodies. One op is one request answered.
//
//	go test -run '^$' -bench 'Requests|BareRelay' -benchtime 3s ./majordomo/
//
// BenchmarkBareRelay is the same traffic through a minimal ROUTER
// forwarder on the same transport with no MDP logic (no headers, no
// services, no heartbeats, workers pipelined instead of one request at a
// time): the ratio of the two is what MDP costs.
func BenchmarkRequests(b *testing.B) {
	for _, n := range []int{1, 4, 16} {
		for _, v := range []Version{V1, V2} {
			b.Run(fmt.Sprintf("workers=%d/%v", n, v), func(b *testing.B) { benchMDP(b, n, v) })
		}
	}
}

func BenchmarkBareRelay(b *testing.B) {
	for _, n := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) { benchRelay(b, n, false) })
	}
}

// BenchmarkLBRelay is the like-for-like baseline: the same minimal
// forwarder, but giving each worker one request at a time (the zguide's
// load-balancing broker), which is the flow MDP mandates.
func BenchmarkLBRelay(b *testing.B) {
	for _, n := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) { benchRelay(b, n, true) })
	}
}

const (
	benchBody   = 64
	benchWindow = 256
)

func benchMDP(b *testing.B, workers int, v Version) {
	send, recv := mdpRig(b, workers, v)
	b.SetBytes(benchBody)
	b.ReportAllocs()
	b.ResetTimer()
	pump(b, b.N, send, recv)
}

// mdpRig starts a broker, workers and a warmed-up client, and returns the
// client's send and receive steps.
func mdpRig(tb testing.TB, workers int, v Version) (send, recv func() error) {
	srv := startBroker(tb, Options{Name: fmt.Sprintf("bench-%d", rand.Uint64())})
	return clientRig(tb, srv.Endpoint(), workers, v, func() { waitWorkers(tb, srv, workers) })
}

// clientRig starts workers of the broker at endpoint, waits with ready
// until it has them, and returns a warmed-up client's steps.
func clientRig(tb testing.TB, endpoint string, workers int, v Version, ready func()) (send, recv func() error) {
	for i := 0; i < workers; i++ {
		goWorker(tb, endpoint, "echo", echo, WorkerOptions{Version: v})
	}
	ready()
	c := newClient(tb, endpoint, ClientOptions{Version: v})
	ctx := context.Background()
	body := make([]byte, benchBody)
	if _, err := c.Call(ctx, "echo", body); err != nil {
		tb.Fatal(err)
	}
	send = func() error { return c.Send(ctx, "echo", body) }
	recv = func() error {
		r, err := c.Recv(ctx)
		if err == nil && (len(r.Body) != 1 || len(r.Body[0]) != benchBody) {
			err = fmt.Errorf("bad reply %q", r.Body)
		}
		return err
	}
	return send, recv
}

// pump keeps up to benchWindow requests in flight until n are answered.
func pump(b testing.TB, n int, send, recv func() error) {
	sent := 0
	for ; sent < n && sent < benchWindow; sent++ {
		if err := send(); err != nil {
			b.Fatal(err)
		}
	}
	for got := 0; got < n; got++ {
		if err := recv(); err != nil {
			b.Fatal(err)
		}
		if sent < n {
			if err := send(); err != nil {
				b.Fatal(err)
			}
			sent++
		}
	}
}

// startRelay is the baseline: a ROUTER that forwards client messages to
// workers (behind an 8-byte client id) and worker replies back. Round
// robin, or with oneAtATime to the longest idle worker, holding messages
// while every worker has one. It listens on endpoint, or on a fresh
// abstract ipc endpoint if that is "".
func startRelay(b testing.TB, endpoint string, oneAtATime bool) *zmtp.Socket {
	if endpoint == "" {
		endpoint = fmt.Sprintf("ipc://@/majordomo-bench-relay/%d", rand.Uint64())
	}
	sock, err := zmtp.Listen(endpoint, zmtp.Options{SocketType: "ROUTER", EventBuffer: 256, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		conns := map[uint64]*zmtp.Conn{}
		isWorker := map[*zmtp.Conn]bool{}
		var workers []*zmtp.Conn
		next := 0
		var idle []*zmtp.Conn
		var waiting [][][]byte
		for batch := range sock.Events() {
			for _, ev := range batch.Events {
				switch ev.Type {
				case zmtp.Connected:
					conns[ev.Conn.ID()] = ev.Conn
				case zmtp.Disconnected:
					delete(conns, ev.Conn.ID())
				case zmtp.Message:
					f := ev.Frames
					switch {
					case len(f) == 1 && string(f[0]) == "W":
						isWorker[ev.Conn] = true
						workers = append(workers, ev.Conn)
						idle = append(idle, ev.Conn)
					case isWorker[ev.Conn]:
						if c := conns[binary.BigEndian.Uint64(f[0])]; c != nil {
							c.Send(f[1:])
						}
						if oneAtATime {
							if len(waiting) > 0 {
								ev.Conn.Send(waiting[0])
								waiting = waiting[1:]
							} else {
								idle = append(idle, ev.Conn)
							}
						}
					case len(workers) > 0:
						out := make([][]byte, 0, len(f)+1)
						out = append(out, binary.BigEndian.AppendUint64(nil, ev.Conn.ID()))
						out = append(out, f...)
						switch {
						case !oneAtATime:
							workers[next%len(workers)].Send(out)
							next++
						case len(idle) > 0:
							idle[0].Send(out)
							idle = idle[1:]
						default:
							waiting = append(waiting, out)
						}
					}
				}
			}
			batch.Release()
		}
	}()
	b.Cleanup(func() { sock.Close() })
	return sock
}

func benchRelay(b *testing.B, workers int, oneAtATime bool) {
	send, recv := relayRig(b, workers, oneAtATime)
	b.SetBytes(benchBody)
	b.ReportAllocs()
	b.ResetTimer()
	pump(b, b.N, send, recv)
}

func relayRig(tb testing.TB, workers int, oneAtATime bool) (send, recv func() error) {
	return relayClientRig(tb, startRelay(tb, "", oneAtATime).Endpoint(), workers)
}

// relayClientRig starts echo workers of the relay at endpoint and returns
// a warmed-up client's steps.
func relayClientRig(tb testing.TB, endpoint string, workers int) (send, recv func() error) {
	dial := func() *zmtp.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := zmtp.Dial(ctx, endpoint, zmtp.Options{SocketType: "DEALER"})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { c.Close() })
		return c
	}
	for i := 0; i < workers; i++ {
		w := dial()
		w.Send([][]byte{[]byte("W")})
		go func() {
			for {
				f, err := w.Recv()
				if err != nil {
					return
				}
				w.Send(f)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond) // let the workers register
	c := dial()
	msg := [][]byte{make([]byte, benchBody)}
	c.Send(msg)
	if _, err := c.Recv(); err != nil {
		tb.Fatal(err)
	}
	send = func() error { return c.Send(msg) }
	recv = func() error {
		f, err := c.Recv()
		if err == nil && (len(f) != 1 || len(f[0]) != benchBody) {
			err = fmt.Errorf("bad reply %q", f)
		}
		return err
	}
	return send, recv
}

// measured is what rate measured: replies per second, and the CPU time this
// process (client, broker and workers) spent per reply.
type measured struct {
	perSec float64
	cpu    time.Duration
}

// rate keeps benchWindow requests in flight for d and measures, then
// drains what is still in flight.
func rate(tb testing.TB, d time.Duration, send, recv func() error) measured {
	for i := 0; i < benchWindow; i++ {
		if err := send(); err != nil {
			tb.Fatal(err)
		}
	}
	n := 0
	cpu0 := selfCPU(tb)
	start := time.Now()
	for time.Since(start) < d {
		if err := recv(); err != nil {
			tb.Fatal(err)
		}
		n++
		if err := send(); err != nil {
			tb.Fatal(err)
		}
	}
	elapsed, cpu := time.Since(start), selfCPU(tb)-cpu0
	for i := 0; i < benchWindow; i++ {
		if err := recv(); err != nil {
			tb.Fatal(err)
		}
	}
	return measured{perSec: float64(n) / elapsed.Seconds(), cpu: cpu / time.Duration(max(n, 1))}
}

// selfCPU is the user and system time this process has used.
func selfCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestBenchRatio measures Majordomo against both relays in back-to-back
// slices on persistent rigs, alternating the order, and reports the median
// of the per-pair ratios, which drift much less than absolute figures on
// a shared machine. Against the one-at-a-time relay it also compares the
// CPU time spent per request (client, broker and workers together: all
// of them are in this process), which a busy machine disturbs less than
// throughput; the relay's CPU over MDP's is what the throughput ratio
// would be with two cores to themselves:
//
//	MDP_BENCH_RATIO=1 go test -run TestBenchRatio -v ./majordomo/
//
// With MDP_BENCH_GCFLOOR=1 the process keeps zbroker's floor under the
// garbage collector's heap goal (internal/gcfloor, as cmd/zbroker and
// TestRelayProcess do) instead of Go's default, for both sides alike:
// they share the process.
func TestBenchRatio(t *testing.T) {
	if os.Getenv("MDP_BENCH_RATIO") == "" {
		t.Skip("set MDP_BENCH_RATIO=1 to measure (about 1 minute; MDP_BENCH_WORKERS=4,16 picks worker counts)")
	}
	if os.Getenv("MDP_BENCH_GCFLOOR") != "" {
		gcfloor.Start(gcfloor.For(0))
		t.Logf("GC floor %d MiB (zbroker's)", gcfloor.For(0)>>20)
	}
	const rounds, slice = 7, 400 * time.Millisecond
	for _, n := range benchWorkers() {
		for _, v := range []Version{V1, V2} {
			mS, mR := mdpRig(t, n, v)
			bS, bR := relayRig(t, n, false)
			lS, lR := relayRig(t, n, true)
			var mdp, bare, lb, rBare, rLB, mCPU, lCPU, rCPU []float64
			for i := 0; i < rounds; i++ {
				var m, b, l measured
				if i%2 == 0 {
					b, l, m = rate(t, slice, bS, bR), rate(t, slice, lS, lR), rate(t, slice, mS, mR)
				} else {
					m, l, b = rate(t, slice, mS, mR), rate(t, slice, lS, lR), rate(t, slice, bS, bR)
				}
				mdp, bare, lb = append(mdp, m.perSec), append(bare, b.perSec), append(lb, l.perSec)
				rBare, rLB = append(rBare, m.perSec/b.perSec), append(rLB, m.perSec/l.perSec)
				mCPU, lCPU = append(mCPU, m.cpu.Seconds()*1e6), append(lCPU, l.cpu.Seconds()*1e6)
				rCPU = append(rCPU, float64(l.cpu)/float64(m.cpu))
			}
			t.Logf("workers=%-2d %v: %6.0f req/s; bare relay %7.0f (ratio %4.1f%%); one-at-a-time relay %6.0f (ratio %5.1f%%); CPU per request %4.1f µs, one-at-a-time relay %4.1f µs (ratio %5.1f%%)",
				n, v, median(mdp), median(bare), 100*median(rBare), median(lb), 100*median(rLB), median(mCPU), median(lCPU), 100*median(rCPU))
		}
	}
}

// benchWorkers is the worker counts TestBenchRatio measures: 1, 4 and 16,
// or those listed in MDP_BENCH_WORKERS (e.g. "4,16").
func benchWorkers() []int {
	list := os.Getenv("MDP_BENCH_WORKERS")
	if list == "" {
		return []int{1, 4, 16}
	}
	var ns []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			panic(fmt.Sprintf("MDP_BENCH_WORKERS: %q is not a worker count", f))
		}
		ns = append(ns, n)
	}
	return ns
}

func median(x []float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestBrokerCPU measures the CPU time a broker running as its own process
// spends per request (from /proc/PID/stat), driven as BenchmarkRequests
// drives the in-process one:
//
//	bin/zbroker --no-zpipes --no-clone --mdp-endpoint tcp://127.0.0.1:5599 bench &
//	MDP_BENCH_ENDPOINT=tcp://127.0.0.1:5599 MDP_BENCH_PID=$! go test -run TestBrokerCPU -v ./majordomo/
//
// After each pair of MDP versions the same load goes through the
// one-at-a-time relay (BenchmarkLBRelay's) run as its own process on TCP
// loopback: the floor that the transport, the kernel and Go's scheduler
// set for a broker with MDP's flow, measured in the same session.
func TestBrokerCPU(t *testing.T) {
	ep := os.Getenv("MDP_BENCH_ENDPOINT")
	pid, err := strconv.Atoi(os.Getenv("MDP_BENCH_PID"))
	if ep == "" || err != nil {
		t.Skip("set MDP_BENCH_ENDPOINT and MDP_BENCH_PID (of a running zbroker) to measure")
	}
	const n = 100000
	measure := func(t *testing.T, who string, pid int, send, recv func() error) {
		user0, sys0 := processCPU(t, pid)
		start := time.Now()
		pump(t, n, send, recv)
		user1, sys1 := processCPU(t, pid)
		took := time.Since(start)
		perReq := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / n }
		t.Logf("%.0f req/s, %s CPU %.2f µs/request (user %.2f, system %.2f)", n/took.Seconds(), who,
			perReq(user1-user0+sys1-sys0), perReq(user1-user0), perReq(sys1-sys0))
	}
	for _, workers := range []int{1, 4} {
		for _, v := range []Version{V1, V2} {
			t.Run(fmt.Sprintf("workers=%d/%v", workers, v), func(t *testing.T) {
				send, recv := clientRig(t, ep, workers, v, func() { waitMMIWorkers(t, ep, workers) })
				measure(t, "broker", pid, send, recv)
			})
		}
		t.Run(fmt.Sprintf("workers=%d/relay", workers), func(t *testing.T) {
			relayEP, relayPID := relayProcess(t)
			send, recv := relayClientRig(t, relayEP, workers)
			measure(t, "relay", relayPID, send, recv)
		})
	}
}

// relayProcess starts the one-at-a-time relay as a process of its own (this
// test binary running TestRelayProcess) on a TCP loopback port, and
// returns its endpoint and pid.
func relayProcess(t *testing.T) (endpoint string, pid int) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestRelayProcess$")
	cmd.Env = append(os.Environ(), "MDP_RELAY_PROCESS=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close() // its end
		cmd.Wait()
	})
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	endpoint, ok := strings.CutPrefix(strings.TrimSpace(line), "relay ")
	if err != nil || !ok {
		t.Fatalf("relay process: %q %v", line, err)
	}
	go io.Copy(io.Discard, out) // its closing lines
	return endpoint, cmd.Process.Pid
}

// TestRelayProcess is the process relayProcess starts: the one-at-a-time
// relay on a TCP loopback port, which it prints, until its stdin closes.
// It has zbroker's floor under the GC's heap goal, as a broker would.
func TestRelayProcess(t *testing.T) {
	if os.Getenv("MDP_RELAY_PROCESS") == "" {
		t.Skip("run by TestBrokerCPU")
	}
	gcfloor.Start(gcfloor.For(0))
	sock := startRelay(t, "tcp://127.0.0.1:0", true)
	fmt.Printf("relay %s\n", sock.Endpoint())
	io.Copy(io.Discard, os.Stdin)
}

// waitMMIWorkers asks the broker (mmi.workers) until echo has n workers.
func waitMMIWorkers(t testing.TB, endpoint string, n int) {
	c := newClient(t, endpoint, ClientOptions{})
	for deadline := time.Now().Add(10 * time.Second); ; {
		got, err := c.Call(testCtx(t, 5*time.Second), MMIWorkers, []byte("echo"))
		if err == nil && join(got) == strconv.Itoa(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("echo workers: %q %v, want %d", got, err, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// processCPU is the user and system time of process pid so far: the
// kernel's share says how much of the broker's cost is syscalls and
// wake-ups.
func processCPU(t testing.TB, pid int) (user, system time.Duration) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which is in parentheses: state is
	// field 3, utime 14 and stime 15, in clock ticks (USER_HZ, 100).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return time.Duration(utime) * 10 * time.Millisecond, time.Duration(stime) * 10 * time.Millisecond
}

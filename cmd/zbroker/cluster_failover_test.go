package main

// Failover in cluster mode (docs/cluster.md, "After a node failure"), as
// a user sees it: three zbroker processes, writers on A (the Go client and
// pyzmq), the reader on C; the pipe's stream leader is SIGKILLed mid-stream
// and restarted, then the reader's node is SIGKILLed and the reader goes
// on from another host. Every acknowledged chunk is read; duplicates are
// counted and stay within the documented bound.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/zbroker/zbroker/internal/interop"
	"github.com/zbroker/zbroker/internal/jsname"
	"github.com/zbroker/zbroker/zpipes"
)

// arg is the value of flag in n's command line.
func (n *node) arg(flag string) string {
	for i, a := range n.args[:len(n.args)-1] {
		if a == flag {
			return n.args[i+1]
		}
	}
	return ""
}

// serverName is the node's NATS server name (kept in its data dir).
func (n *node) serverName(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.arg("--data-dir"), "node-name"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// jsClient connects to node n's NATS port, as the nats tool would.
func jsClient(t *testing.T, n *node) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect("nats://"+n.arg("--nats-listen"), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// moveLeaders makes the server named to the leader of the pipe's stream
// and of its reader's consumer, so that killing it kills both leaders and
// neither the writers' host nor the reader's.
func moveLeaders(ctx context.Context, t *testing.T, js jetstream.JetStream, stream, to string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": to}})
	for _, group := range []struct{ api, consumer string }{
		{"$JS.API.STREAM.LEADER.STEPDOWN." + stream, ""},
		{"$JS.API.CONSUMER.LEADER.STEPDOWN." + stream + ".reader", "reader"},
	} {
		for {
			leader, err := groupLeader(ctx, js, stream, group.consumer)
			if err == nil && leader == to {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("leader of %s%s never moved to %s (is %q, %v)", stream, group.consumer, to, leader, err)
			}
			if err == nil {
				js.Conn().Request(group.api, body, 5*time.Second)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

func groupLeader(ctx context.Context, js jetstream.JetStream, stream, consumer string) (string, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if consumer != "" {
		ci, err := js.Consumer(rctx, stream, consumer)
		if err != nil {
			return "", err
		}
		if c := ci.CachedInfo().Cluster; c != nil {
			return c.Leader, nil
		}
		return "", nil
	}
	s, err := js.Stream(rctx, stream)
	if err != nil {
		return "", err
	}
	if c := s.CachedInfo().Cluster; c != nil {
		return c.Leader, nil
	}
	return "", nil
}

// okTimes records when a writer's WRITEs got their OK.
type okTimes struct {
	mu sync.Mutex
	at []time.Time
}

func (o *okTimes) add() {
	o.mu.Lock()
	o.at = append(o.at, time.Now())
	o.mu.Unlock()
}

func (o *okTimes) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.at)
}

// stall is the longest time without an OK from t0 (a kill) to t1.
func (o *okTimes) stall(t0, t1 time.Time) time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	longest, prev := time.Duration(0), t0
	for _, at := range o.at {
		if at.After(t0) && !at.After(t1) {
			longest = max(longest, at.Sub(prev))
			prev = at
		}
	}
	return longest
}

// goWriter writes chunks "go-%06d" from index from on, with window
// WRITEs in flight, until stop is closed; it returns the index after the
// last it wrote, all acknowledged unless err is set.
func goWriter(ctx context.Context, c *zpipes.Client, pipe string, from, window int, oks *okTimes, stop <-chan struct{}) (int, error) {
	var inflight []*zpipes.Pending
	wait := func() error {
		_, err := inflight[0].Wait(ctx)
		inflight = inflight[1:]
		if err == nil {
			oks.add()
		}
		return err
	}
	for n := from; ; n++ {
		select {
		case <-stop:
			for len(inflight) > 0 {
				if err := wait(); err != nil {
					return n, err
				}
			}
			return n, nil
		default:
		}
		inflight = append(inflight, c.WriteAsync(pipe, fmt.Appendf(nil, "go-%06d", n)))
		if len(inflight) > window {
			if err := wait(); err != nil {
				return n, err
			}
		}
	}
}

// pyWriter starts testdata/cluster_writer.py: chunks "py-%06d" 0..n-1.
func pyWriter(t *testing.T, n *node, pipe string, count, window int) <-chan error {
	t.Helper()
	py := interop.Python(t)
	cmd := exec.Command(py, filepath.Join("testdata", "cluster_writer.py"), zpipes.Endpoint(n.args[len(n.args)-1]),
		pipe, "py-", strconv.Itoa(count), strconv.Itoa(window))
	done := make(chan error, 1)
	go func() {
		out, err := cmd.CombinedOutput()
		if err == nil && !strings.Contains(string(out), fmt.Sprintf("done %d", count)) {
			err = fmt.Errorf("unexpected output")
		}
		if err != nil {
			err = fmt.Errorf("cluster_writer.py: %v\n%s", err, out)
		}
		done <- err
	}()
	return done
}

// readTally checks what the reader gets: each writer's chunks, those read
// the first time in the writer's order (docs/cluster.md: per-writer order
// holds across a failover), some read again after a failure.
type readTally struct {
	mu    sync.Mutex
	next  map[string]int // per writer prefix: the next index never read
	reads int
	dups  int
	err   error
}

func (r *readTally) add(chunk []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads++
	prefix, num, ok := strings.Cut(string(chunk), "-")
	i, err := strconv.Atoi(num)
	switch next := r.next[prefix]; {
	case !ok || err != nil || (prefix != "go" && prefix != "py"):
		r.err = fmt.Errorf("read %q", chunk)
	case i < next:
		r.dups++
	case i == next:
		r.next[prefix]++
	case r.err == nil:
		r.err = fmt.Errorf("read %q before %s-%06d", chunk, prefix, next)
	}
}

func (r *readTally) state() (reads, dups int, next map[string]int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reads, r.dups, maps.Clone(r.next), r.err
}

// readPipe reads until ctx ends. When its host dies (the test says so on
// moves) it goes on from the node moves gives, retrying while that node
// refuses it as a second reader (until the dead host's lease expires).
func readPipe(ctx context.Context, t *testing.T, host *node, pipe string, tally *readTally, moves <-chan *node) {
	connect := func(n *node) *zpipes.Client {
		c, err := zpipes.Dial(ctx, n.args[len(n.args)-1])
		if err == nil {
			err = c.Open(ctx, pipe)
		}
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("reader on %s: %v", n.args[len(n.args)-1], err)
			}
			return nil
		}
		return c
	}
	r := connect(host)
	for r != nil && ctx.Err() == nil {
		got, err := r.Read(ctx, pipe)
		switch {
		case err == nil:
			tally.add(got)
		case ctx.Err() != nil:
		case strings.Contains(err.Error(), "already has a reader"):
			time.Sleep(500 * time.Millisecond)
		default:
			r.Disconnect()
			select {
			case host = <-moves:
			case <-ctx.Done():
				t.Errorf("read failed and the reader's host was not killed: %v", err)
				return
			}
			r = connect(host)
		}
	}
	if r != nil {
		r.Disconnect()
	}
}

// waitCurrent waits until every replica of the pipe's stream and consumer
// is current, so that the next kill leaves a quorum.
func waitCurrent(ctx context.Context, t *testing.T, js jetstream.JetStream, stream string) {
	t.Helper()
	for ; ctx.Err() == nil; time.Sleep(200 * time.Millisecond) {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s, err := js.Stream(rctx, stream)
		var ci *jetstream.ConsumerInfo
		if err == nil {
			var c jetstream.Consumer
			if c, err = js.Consumer(rctx, stream, "reader"); err == nil {
				ci = c.CachedInfo()
			}
		}
		cancel()
		if err == nil && allCurrent(s.CachedInfo().Cluster) && allCurrent(ci.Cluster) {
			return
		}
	}
	t.Fatalf("replicas of %s never all current", stream)
}

func allCurrent(c *jetstream.ClusterInfo) bool {
	if c == nil || c.Leader == "" || len(c.Replicas) != 2 {
		return false
	}
	for _, r := range c.Replicas {
		if !r.Current || r.Offline {
			return false
		}
	}
	return true
}

// failoverRounds is how many times TestClusterFailover SIGKILLs the
// stream leader and stops it with TERM (each once per round): 1, or
// ZBROKER_FAILOVER_ROUNDS for the failover figures (docs/cluster.md).
func failoverRounds(t *testing.T) int {
	if s := os.Getenv("ZBROKER_FAILOVER_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("ZBROKER_FAILOVER_ROUNDS=%q: want a positive count", s)
		}
		return n
	}
	return 1
}

// TestClusterFailover: writers on A (the Go client and pyzmq), the reader
// on C. Each round the pipe's stream and consumer leader (moved to B) is
// SIGKILLed mid-stream and restarted, then stopped with TERM and
// restarted; last, the reader's node C is SIGKILLed as soon as B is back
// and the reader goes on from B once C's lease expired. Every acknowledged chunk is read, each
// writer's new chunks in its order, duplicates within the documented
// bound. The writer's stall after each kill (its longest time without an
// OK until the next kill) is logged: the failover figures.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three brokers and kills them")
	}
	rounds := failoverRounds(t)
	t0 := time.Now()
	phase := func(what string) { t.Logf("%6.1fs %s", time.Since(t0).Seconds(), what) }
	interop.Python(t) // may skip, before the cluster starts
	nodes := startProcessCluster(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	t.Cleanup(func() {
		if t.Failed() {
			for i, n := range nodes {
				t.Logf("node %d's log (since its last start):\n%s", i, n.log)
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(3+rounds)*time.Minute)
	defer cancel()
	phase("cluster up")
	const pipe = "p"
	w := pipeClient(t, a)
	// The stream exists once the first chunk is stored.
	if err := w.Write(ctx, pipe, []byte("go-000000")); err != nil {
		t.Fatal(err)
	}
	stream := jsname.PipeStream([]byte(pipe))
	js := jsClient(t, a)

	tally := &readTally{next: map[string]int{}}
	readCtx, stopReading := context.WithCancel(ctx)
	moves := make(chan *node, 1)
	readDone := make(chan struct{})
	go func() { defer close(readDone); readPipe(readCtx, t, c, pipe, tally, moves) }()
	defer func() { stopReading(); <-readDone }()

	var oks okTimes
	stopWriting := make(chan struct{})
	type written struct {
		n   int
		err error
	}
	goDone := make(chan written, 1)
	go func() {
		n, err := goWriter(ctx, w, pipe, 1, 100, &oks, stopWriting)
		goDone <- written{n, err}
	}()
	const pyChunks = 3000
	pyDone := pyWriter(t, a, pipe, pyChunks, 100)

	waitWrites := func(n int) {
		t.Helper()
		for target := oks.count() + n; oks.count() < target; time.Sleep(50 * time.Millisecond) {
			if ctx.Err() != nil {
				t.Fatalf("writer stalled for good: %d OKs", oks.count())
			}
		}
	}
	type kill struct {
		how string
		at  time.Time
	}
	var kills []kill
	bName := b.serverName(t)
	for range rounds {
		for _, how := range []string{"SIGKILL", "TERM"} {
			waitCurrent(ctx, t, js, stream)
			moveLeaders(ctx, t, js, stream, bName)
			waitWrites(300) // mid-stream
			phase(how + " of the stream leader B")
			at := time.Now()
			if how == "SIGKILL" {
				b.kill()
			} else {
				b.stop(t)
			}
			kills = append(kills, kill{how, at})
			b.start(t)
			if !b.ready(t) {
				t.Fatalf("B did not restart:\n%s", b.log)
			}
			phase("B restarted")
		}
	}
	// C dies as soon as B is back, before B's replicas caught up.
	phase("SIGKILL of the reader's node C")
	killedReader := time.Now()
	c.kill()
	moves <- b
	close(stopWriting)
	wr := <-goDone
	if wr.err != nil {
		t.Fatal(wr.err)
	}
	if err := <-pyDone; err != nil {
		t.Fatal(err)
	}

	want := map[string]int{"go": wr.n, "py": pyChunks}
	for {
		reads, dups, next, err := tally.state()
		if err != nil {
			t.Fatal(err)
		}
		if maps.Equal(next, want) {
			phase("all read")
			// At most the read-ahead (1000) again per failure.
			if bound := 1000 * (2*rounds + 1); dups > bound {
				t.Fatalf("%d chunks read again, more than the documented bound %d", dups, bound)
			}
			t.Logf("every acknowledged chunk read: %d reads, %d chunks read again", reads, dups)
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("reader stopped at %v of %v (%d reads)", next, want, reads)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The writer's stall after a kill: its longest time without an OK
	// until the next kill.
	for i, k := range kills {
		end := killedReader
		if i+1 < len(kills) {
			end = kills[i+1].at
		}
		t.Logf("kill %d of the stream leader (%s): writer stalled %v", i+1, k.how, oks.stall(k.at, end).Round(time.Millisecond))
	}
}

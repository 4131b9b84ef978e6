package clone

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/zbroker/zbroker/internal/interop"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// pythonZMQ returns a python that can import zmq, or skips the test
// (fails it under CI=true or ZBROKER_INTEROP=require).
func pythonZMQ(t testing.TB) string { return interop.Python(t) }

// peer is a running chp_peer.py.
type peer struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   bytes.Buffer
	mu    sync.Mutex
	done  chan error
}

func (p *peer) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *peer) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func startPeer(t *testing.T, s *Server, mode string, args ...string) *peer {
	t.Helper()
	return startPeerAt(t, s.Endpoints(), mode, args...)
}

// startPeerAt is startPeer for a server at ep, e.g. in another process.
func startPeerAt(t *testing.T, ep Endpoints, mode string, args ...string) *peer {
	t.Helper()
	py := pythonZMQ(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	all := append([]string{filepath.Join("testdata", "chp_peer.py"), mode, ep.Snapshot, ep.Publisher, ep.Collector}, args...)
	p := &peer{cmd: exec.CommandContext(ctx, py, all...), done: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	p.cmd.Stdout, p.cmd.Stderr = p, p
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait(); cancel() }()
	t.Cleanup(func() { cancel() })
	return p
}

// wait waits for the script and returns its JSON output lines.
func (p *peer) wait(t *testing.T) []map[string]any {
	t.Helper()
	if err := <-p.done; err != nil {
		t.Fatalf("%v: %v\n%s", p.cmd.Args, err, p.output())
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(p.output()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("bad output line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	return lines
}

// A libzmq late joiner, joining while a libzmq publisher sends 10,000
// updates through the collector, ends with exactly the subtree's final
// state; it applies each live update once, in order (the script asserts
// order), and sees nothing outside its subtree.
func TestInteropLateJoiner(t *testing.T) {
	s := startServer(t, Options{})
	const n = 10000
	pub := startPeer(t, s, "publish", fmt.Sprint(n), "/k/", "/other/")
	waitFor(t, "updates flowing", func() bool { return s.Stats().Sequence >= n/4 })
	join := startPeer(t, s, "join", "/k/")
	waitFor(t, "joiner subscribed", func() bool { return strings.Contains(join.output(), "subscribed") })
	pub.stdin.Write([]byte("go\n")) // the rest flows while it snapshots
	pub.wait(t)
	lines := join.wait(t)
	res := lines[len(lines)-1]
	// Update i gets sequence i+1: one publisher, nothing else.
	want := map[string]string{}
	snapSeq := uint64(res["snapshot_seq"].(float64))
	live := 0
	for i := range n {
		key := fmt.Sprintf("/k/%d", i%500)
		if i == n-1 {
			key = "/k/done"
		} else if i%10 == 9 {
			continue // to /other/
		}
		want[key] = fmt.Sprint(i)
		if uint64(i+1) > snapSeq {
			live++
		}
	}
	if snapSeq < n/4 {
		t.Fatalf("snapshot at sequence %d, before the flow paused", snapSeq)
	}
	if snapSeq >= n {
		t.Logf("snapshot at sequence %d: after the flow (slow machine?)", snapSeq)
	}
	got := res["map"].(map[string]any)
	if len(got) != len(want) {
		t.Fatalf("joiner has %d keys, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s = %v, want %s", k, got[k], v)
		}
	}
	if int(res["live"].(float64)) != live || uint64(res["seq"].(float64)) != n {
		t.Fatalf("live updates %v (want %d), last seq %v", res["live"], live, res["seq"])
	}
	t.Logf("snapshot at seq %d, then %d live updates", snapSeq, live)
}

// An ephemeral value set by a libzmq client expires and its expiry is
// published as a delete (empty body) with a new sequence number.
func TestInteropTTL(t *testing.T) {
	s := startServer(t, Options{})
	lines := startPeer(t, s, "ttl", "/eph/x").wait(t)
	if len(lines) != 2 {
		t.Fatalf("lines %v", lines)
	}
	set, del := lines[0], lines[1]
	if set["body"] != "ephemeral" || set["props"] != "ttl=0.3\n" || del["body"] != "" || del["seq"].(float64) != set["seq"].(float64)+1 {
		t.Fatalf("set %v, delete %v", set, del)
	}
	if after := del["after"].(float64); after < 0.25 || after > 5 {
		t.Fatalf("expired after %vs", after)
	}
	if st := s.Stats(); st.Keys != 0 || st.Expired != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A libzmq client survives a restart: its sockets reconnect by
// themselves, it notices the server was gone (no HUGZ for its timeout),
// asks for a new snapshot and carries on from the new server's sequence.
// The old server's map is gone; what it sees is the new server's.
func TestInteropRestart(t *testing.T) {
	name := uniqName(t)
	s := startServer(t, Options{Name: name})
	c := connect(t, clientOpts(s, ""))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := c.SetWait(ctx, "/old", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	p := startPeer(t, s, "restart", "0.4")
	waitFor(t, "python sync", func() bool { return strings.Contains(p.output(), `"sync": 1`) })
	s.Close()
	time.Sleep(700 * time.Millisecond) // longer than the script's 0.4s
	s2 := startServer(t, Options{Name: name})
	waitFor(t, "python resync", func() bool { return strings.Contains(p.output(), `"sync": 2`) })
	waitFor(t, "Go client resync", func() bool { return c.Syncs() >= 2 })
	var err error
	waitFor(t, "set /new", func() bool {
		err = c.SetWait(ctx, "/new", []byte("2"), 0)
		return err == nil
	})
	lines := p.wait(t)
	t.Logf("python client saw: %v", p.output())
	var sawSilence bool
	for _, l := range lines {
		if _, ok := l["silent"]; ok {
			sawSilence = true
		}
		if l["sync"] == 2.0 {
			if _, ok := l["map"].(map[string]any)["/old"]; ok {
				t.Fatalf("old key survived the restart: %v", l)
			}
		}
	}
	last := lines[len(lines)-1]
	if !sawSilence || (last["live"] != "/new" && last["sync"] == nil) {
		t.Fatalf("python saw %v", lines)
	}
	_ = s2
}

// Garbage on the collector and snapshot sockets is dropped and counted;
// the connections stay up and a Go watcher sees only the good update.
func TestInteropMalformed(t *testing.T) {
	s := startServer(t, Options{})
	c := connect(t, clientOpts(s, ""))
	ch, stop := c.Watch()
	defer stop()
	res := startPeer(t, s, "garbage").wait(t)[0]
	if res["map"].(map[string]any)["/good"] != "fine" {
		t.Fatalf("python got %v", res)
	}
	u := nextUpdate(t, ch)
	if u.Key != "/good" || u.Seq != 1 {
		t.Fatalf("watcher saw %+v", u)
	}
	st := s.Stats()
	if st.Rejected != 12 || st.Updates != 1 {
		t.Fatalf("stats %+v", st)
	}
	if err := c.SetWait(ctx(t), "/after", []byte("ok"), 0); err != nil {
		t.Fatal(err)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return c
}

// The README's python example works as printed.
func TestInteropReadmeExample(t *testing.T) {
	py := pythonZMQ(t)
	name := uniqName(t)
	startServer(t, Options{Name: name})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, filepath.Join("testdata", "readme_example.py"), name).CombinedOutput()
	if err != nil || string(out) != "1 /config/colour blue\n" {
		t.Fatalf("%v: %q", err, out)
	}
}

// The Go client works against a CHP server written on libzmq: it
// snapshots, publishes through a libzmq SUB collector and applies updates.
func TestInteropGoClientLibzmqServer(t *testing.T) {
	py := pythonZMQ(t)
	base := "ipc://@/clone-test/" + uniqName(t) + "/"
	o := ClientOptions{
		SnapshotEndpoint:  base + "snapshot",
		PublisherEndpoint: base + "updates",
		CollectorEndpoint: base + "collector",
		HeartbeatTimeout:  time.Second,
		RetryInterval:     50 * time.Millisecond,
		Logger:            quietLogger,
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	srv := &peer{done: make(chan error, 1)}
	srv.cmd = exec.CommandContext(ctx, py, filepath.Join("testdata", "chp_peer.py"), "serve", o.SnapshotEndpoint, o.PublisherEndpoint, o.CollectorEndpoint)
	srv.cmd.Stdout, srv.cmd.Stderr = srv, srv
	if err := srv.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { srv.done <- srv.cmd.Wait() }()
	waitFor(t, "python server", func() bool { return strings.Contains(srv.output(), "listening") })
	a := connect(t, o)
	ob := o
	ob.Subtree = "/x/"
	b := connect(t, ob)
	ch, stop := b.Watch()
	defer stop()
	// A libzmq PUB->SUB link drops what is sent before the SUB's
	// subscription arrives: retry until the first update gets through.
	waitFor(t, "first update through the collector", func() bool {
		c, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		return a.SetWait(c, "/x/1", []byte("one"), 0) == nil
	})
	for i := 2; i <= 100; i++ {
		if err := a.Set(fmt.Sprintf("/x/%d", i), []byte(fmt.Sprint(i)), 0); err != nil {
			t.Fatal(err)
		}
		a.Set("/y/skip", []byte("no"), 0)
	}
	a.SetWait(ctx, "/x/end", []byte("end"), 0)
	var last uint64
	for {
		u := nextUpdate(t, ch)
		if !strings.HasPrefix(u.Key, "/x/") || u.Seq <= last {
			t.Fatalf("update %+v after seq %d", u, last)
		}
		last = u.Seq
		if u.Key == "/x/end" {
			break
		}
	}
	waitFor(t, "b's copy", func() bool { return len(b.Dump("")) == 101 })
	late := connect(t, ob)
	if got := late.Dump(""); len(got) != 101 || string(got["/x/50"]) != "50" {
		t.Fatalf("late snapshot from libzmq server: %d keys", len(got))
	}
	a.Set("/quit", []byte("1"), 0)
	if err := <-srv.done; err != nil {
		t.Fatalf("%v\n%s", err, srv.output())
	}
}

package main

// Cluster mode as a user runs it: three zbroker processes (this test
// binary re-executed as zbroker, so a node can be SIGKILLed) on loopback.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zbroker/zbroker/clone"
	"github.com/zbroker/zbroker/internal/natsnode/natstest"
	"github.com/zbroker/zbroker/zpipes"
)

// asZbroker makes the test binary run as zbroker when re-executed.
const asZbroker = "ZBROKER_TEST_RUN_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asZbroker) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// node is one zbroker process of a test cluster.
type node struct {
	args []string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

func (n *node) start(t *testing.T) {
	t.Helper()
	n.log = &syncBuffer{}
	n.cmd = exec.Command(os.Args[0], n.args...)
	n.cmd.Env = append(os.Environ(), asZbroker+"=1")
	n.cmd.Stderr = n.log
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.done = make(chan struct{})
	go func() { n.cmd.Wait(); close(n.done) }()
}

// ready waits for the started line; it reports whether the node came up.
func (n *node) ready(t *testing.T) bool {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for !strings.Contains(n.log.String(), "zbroker ready") {
		select {
		case <-n.done:
			return false
		case <-deadline:
			t.Fatalf("node did not start:\n%s", n.log)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return true
}

func (n *node) kill() {
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

func (n *node) stop(t *testing.T) {
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		n.kill()
		t.Errorf("node did not stop on SIGTERM:\n%s", n.log)
	}
}

// startProcessCluster starts three zbrokers in cluster mode, retrying on
// new ports if one was taken meanwhile.
func startProcessCluster(t *testing.T) []*node {
	for attempt := 0; ; attempt++ {
		ports := natstest.FreePorts(t, 6)
		var routes []string
		for i := range 3 {
			routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[3+i]))
		}
		nodes := make([]*node, 3)
		for i := range nodes {
			nodes[i] = &node{args: []string{
				"--data-dir", t.TempDir(),
				"--nats-listen", fmt.Sprintf("127.0.0.1:%d", ports[i]),
				"--cluster-listen", fmt.Sprintf("127.0.0.1:%d", ports[3+i]),
				"--cluster", strings.Join(routes, ","),
				"--no-majordomo",
				uniqueName(fmt.Sprint("node", i)),
			}}
			nodes[i].start(t)
		}
		ok := true
		for _, n := range nodes {
			ok = n.ready(t) && ok
		}
		if ok {
			t.Cleanup(func() {
				for _, n := range nodes {
					n.kill()
				}
			})
			return nodes
		}
		for _, n := range nodes {
			n.kill()
		}
		var logs string
		for _, n := range nodes {
			logs += n.log.String()
		}
		if attempt < 3 && strings.Contains(logs, "address already in use") {
			continue
		}
		t.Fatalf("cluster did not start:\n%s", logs)
	}
}

func pipeClient(t *testing.T, n *node) *zpipes.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := zpipes.Dial(ctx, n.args[len(n.args)-1])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect() })
	if err := c.Open(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	return c
}

func cloneClient(t *testing.T, n *node) *clone.Client {
	t.Helper()
	name := n.args[len(n.args)-1]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := clone.Connect(ctx, clone.ClientOptions{Name: name, HeartbeatTimeout: 3 * time.Second, RetryInterval: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Clone through the command line: a key set on A is seen on B and C under
// the same sequence; B, SIGKILLed and restarted on its data dir after
// missing an update, catches up.
func TestClusterProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three brokers")
	}
	nodes := startProcessCluster(t)
	a, b, c := cloneClient(t, nodes[0]), cloneClient(t, nodes[1]), cloneClient(t, nodes[2])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := a.SetWait(ctx, "k", []byte("v1"), 0); err != nil {
		t.Fatal(err)
	}
	waitSeq := func(what string, want uint64, clients ...*clone.Client) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			ok := true
			for _, cl := range clients {
				ok = ok && cl.Seq() == want
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: sequences never all reached %d", what, want)
			}
		}
	}
	waitSeq("first key", a.Seq(), b, c)
	if v, _ := c.Get("k"); string(v) != "v1" {
		t.Fatalf("C has %q", v)
	}

	// zpipes across the processes, and their failures: cluster_failover_test.go.
	nodes[1].kill()
	if err := a.SetWait(ctx, "k", []byte("v2"), 0); err != nil {
		t.Fatal(err)
	}
	nodes[1].start(t)
	if !nodes[1].ready(t) {
		t.Fatalf("B did not restart:\n%s", nodes[1].log)
	}
	b2 := cloneClient(t, nodes[1])
	waitSeq("after B's restart", a.Seq(), b2, c)
	if v, _ := b2.Get("k"); string(v) != "v2" {
		t.Fatalf("restarted B has %q", v)
	}
	for _, n := range nodes {
		n.stop(t)
	}
	if !strings.Contains(nodes[0].log.String(), "clone_keys_kept_in_cluster=1") {
		t.Errorf("A's stop line does not say the key is kept:\n%s", nodes[0].log)
	}
}

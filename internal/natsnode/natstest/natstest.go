// Package natstest starts embedded JetStream clusters on loopback for
// tests, on free ports, retrying when a port is taken meanwhile.
package natstest

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/natsnode"
)

// logger shows the nodes' warnings with go test -v only: a forming
// cluster logs route errors that are expected.
func logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

// Cluster is a set of embedded nodes on loopback.
type Cluster struct {
	t       testing.TB
	Configs []natsnode.Config
	mu      sync.Mutex
	Nodes   []*natsnode.Node // nil while a node is stopped
}

// FreePorts returns n distinct loopback ports that were free a moment
// ago, below the kernel's ephemeral range: a port in that range can be
// given to an outgoing connection while its node is stopped (the other
// nodes' route reconnections, other tests' dials), and the node then
// cannot listen on it again when it restarts ("address already in use").
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	hi := ephemeralLow()
	var ls []net.Listener
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries == 1000 {
			t.Fatalf("no %d free loopback ports in 10000-%d", n, hi-1)
		}
		port := 10000 + rand.IntN(hi-10000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken, or picked twice: both still listening
		}
		ls = append(ls, l)
		ports = append(ports, port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if f := strings.Fields(string(b)); err == nil && len(f) == 2 {
		if lo, err := strconv.Atoi(f[0]); err == nil && lo > 11000 {
			return lo
		}
	}
	return 32768 // Linux's default
}

// Configs returns the configurations of an n-node cluster on fresh ports,
// with stores under dirs made by t.
func Configs(t testing.TB, n int) []natsnode.Config {
	ports := FreePorts(t, 2*n)
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[n+i]))
	}
	cfgs := make([]natsnode.Config, n)
	for i := range n {
		cfgs[i] = natsnode.Config{
			DataDir: t.TempDir(),
			Listen:  fmt.Sprintf("127.0.0.1:%d", ports[i]),
			Wait:    30 * time.Second,
			Logger:  logger(),
		}
		if n > 1 {
			cfgs[i].ClusterListen = fmt.Sprintf("127.0.0.1:%d", ports[n+i])
			cfgs[i].Routes = routes
		}
	}
	return cfgs
}

// Start starts an n-node cluster and stops it at the end of the test. A
// start that fails because a port was taken is retried on new ports.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	for attempt := 0; ; attempt++ {
		c := &Cluster{t: t, Configs: Configs(t, n), Nodes: make([]*natsnode.Node, n)}
		err := c.startAll()
		if err == nil {
			t.Cleanup(c.Stop)
			return c
		}
		c.Stop()
		if attempt < 3 && strings.Contains(err.Error(), "address already in use") {
			t.Logf("port collision, retrying: %v", err)
			continue
		}
		t.Fatal(err)
	}
}

// startAll starts the nodes at once: each waits for a quorum of the others.
func (c *Cluster) startAll() error {
	errs := make([]error, len(c.Configs))
	var wg sync.WaitGroup
	for i := range c.Configs {
		wg.Go(func() { errs[i] = c.StartNode(i) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// StartNode (re)starts node i on its configuration and store.
func (c *Cluster) StartNode(i int) error {
	n, err := natsnode.Start(context.Background(), c.Configs[i])
	if err != nil {
		return fmt.Errorf("node %d: %w", i, err)
	}
	c.mu.Lock()
	c.Nodes[i] = n
	c.mu.Unlock()
	return nil
}

// StopNode shuts node i down (its store stays).
func (c *Cluster) StopNode(i int) {
	c.mu.Lock()
	n := c.Nodes[i]
	c.Nodes[i] = nil
	c.mu.Unlock()
	if n != nil {
		n.Close()
	}
}

// Stop shuts every node down.
func (c *Cluster) Stop() {
	for i := range c.Nodes {
		c.StopNode(i)
	}
}

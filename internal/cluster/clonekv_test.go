package cluster

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zbroker/zbroker/clone"
	"github.com/zbroker/zbroker/internal/natsnode"
	"github.com/zbroker/zbroker/internal/natsnode/natstest"
)

const testTimeout = 30 * time.Second

var testLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

var nameSeq atomic.Uint64

// cloneHost is one host's Clone server on its JetStream node.
type cloneHost struct {
	kv  *CloneKV
	srv *clone.Server
}

func startCloneHost(t *testing.T, n *natsnode.Node) *cloneHost {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	kv, err := OpenCloneKV(ctx, n.JS, n.Replicas, testLog)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := clone.Start(clone.Options{
		Name:              fmt.Sprintf("cl-%d-%d", os.Getpid(), nameSeq.Add(1)),
		HeartbeatInterval: 100 * time.Millisecond,
		Replica:           kv,
		Logger:            testLog,
	})
	if err != nil {
		kv.Close()
		t.Fatal(err)
	}
	h := &cloneHost{kv, srv}
	t.Cleanup(h.close)
	return h
}

func (h *cloneHost) close() {
	h.srv.Close()
	h.kv.Close()
}

func (h *cloneHost) client(t *testing.T, subtree string) *clone.Client {
	t.Helper()
	ep := h.srv.Endpoints()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := clone.Connect(ctx, clone.ClientOptions{
		SnapshotEndpoint: ep.Snapshot, PublisherEndpoint: ep.Publisher, CollectorEndpoint: ep.Collector,
		// A loaded 2-core CI machine was seen starving the process for
		// over 2 s: a client taking its server for dead then resyncs, and
		// a resync shows only the difference between two snapshots (a
		// value set and expired meanwhile not at all), not the updates
		// the tests count.
		Subtree: subtree, HeartbeatTimeout: 10 * time.Second, RetryInterval: 50 * time.Millisecond, Logger: testLog,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// next is the watcher's next update from client c; a resync fails the
// test as one, not as an update missing or different.
func next(t *testing.T, c *clone.Client, ch <-chan clone.Update) clone.Update {
	t.Helper()
	select {
	case u := <-ch:
		if u.Resync {
			t.Fatalf("client resynchronized (%d snapshots taken): %+v", c.Syncs(), u)
		}
		return u
	case <-time.After(testTimeout):
		t.Fatalf("no update (client took %d snapshots)", c.Syncs())
	}
	panic("unreachable")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(testTimeout); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// Updates set through host A reach the subscribers of hosts B and C with
// the same sequence numbers, UUIDs and properties; keys of any bytes,
// subtrees, deletes and TTLs work as on one host; a host restarted after
// missing updates serves the same map under the same sequence.
func TestCloneAcrossHosts(t *testing.T) {
	c := natstest.Start(t, 3)
	hosts := []*cloneHost{startCloneHost(t, c.Nodes[0]), startCloneHost(t, c.Nodes[1]), startCloneHost(t, c.Nodes[2])}
	a := hosts[0].client(t, "")
	clientB, clientC := hosts[1].client(t, "/app/"), hosts[2].client(t, "/app/")
	watchB, stopB := clientB.Watch()
	defer stopB()
	watchC, stopC := clientC.Watch()
	defer stopC()

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	odd := "/app/a.b *>\x00\xff"
	steps := []struct {
		key   string
		value []byte
		ttl   time.Duration
	}{
		{"/app/x", []byte("1"), 0},
		{"/other", []byte("not in the subtree"), 0},
		{odd, []byte("odd key"), 0},
		{"/app/ttl", []byte("brief"), 300 * time.Millisecond}, // rounded up to 1 s
		{"/app/x", nil, 0},
		{"/app", []byte("prefix is not a token boundary"), 0},
		{"/app/y", []byte("2"), 0},
	}
	for _, s := range steps {
		if err := a.SetWait(ctx, s.key, s.value, s.ttl); err != nil {
			t.Fatal(s.key, err)
		}
	}
	// Subscribers of /app/ get five updates and then the expiry of
	// /app/ttl, the same on both hosts.
	var gotB, gotC []clone.Update
	for range 6 {
		gotB = append(gotB, next(t, clientB, watchB))
		gotC = append(gotC, next(t, clientC, watchC))
	}
	for i := range gotB {
		b, c := gotB[i], gotC[i]
		if b.Key != c.Key || b.Seq != c.Seq || !bytes.Equal(b.Value, c.Value) || !bytes.Equal(b.UUID, c.UUID) || !slices.Equal(b.Props, c.Props) {
			t.Fatalf("update %d differs:\nB %+v\nC %+v", i, b, c)
		}
		if i > 0 && b.Seq <= gotB[i-1].Seq {
			t.Fatalf("sequence not increasing: %+v after %+v", b, gotB[i-1])
		}
		if len(b.UUID) != 16 && b.Value != nil {
			t.Fatalf("update %d lost its UUID: %+v", i, b)
		}
	}
	keys := []string{gotB[0].Key, gotB[1].Key, gotB[2].Key, gotB[3].Key, gotB[4].Key, gotB[5].Key}
	want := []string{"/app/x", odd, "/app/ttl", "/app/x", "/app/y", "/app/ttl"}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys %q, want %q", keys, want)
	}
	if gotB[3].Value != nil || gotB[5].Value != nil {
		t.Fatalf("delete or expiry carried a value: %+v %+v", gotB[3], gotB[5])
	}
	if v, ok := (&clone.KVMsg{Props: gotB[2].Props}).Prop("ttl"); !ok || v != "0.3" {
		t.Fatalf("ttl property %q %v did not survive", v, ok)
	}
	if st := hosts[1].srv.Stats(); st.Expired != 1 {
		t.Fatalf("host B counted %d expiries, want 1", st.Expired)
	}

	// Host C goes down, misses updates, comes back: same map, same
	// sequence as host B.
	hosts[2].close()
	c.StopNode(2)
	if err := a.SetWait(ctx, "/app/late", []byte("while C was down"), 0); err != nil {
		t.Fatal(err)
	}
	if err := c.StartNode(2); err != nil {
		t.Fatal(err)
	}
	hosts[2] = startCloneHost(t, c.Nodes[2])
	b2 := hosts[1].client(t, "/app/")
	c2 := hosts[2].client(t, "/app/")
	waitFor(t, "host C to serve /app/late", func() bool { _, ok := c2.Get("/app/late"); return ok })
	waitFor(t, "host B to apply /app/late", func() bool { _, ok := b2.Get("/app/late"); return ok })
	if sb, sc := hosts[1].srv.Stats().Sequence, hosts[2].srv.Stats().Sequence; sb != sc || b2.Seq() != c2.Seq() || sb != b2.Seq() {
		t.Fatalf("sequences differ: servers %d %d, clients %d %d", sb, sc, b2.Seq(), c2.Seq())
	}
	db, dc := b2.Dump("/app/"), c2.Dump("/app/")
	if len(db) != 3 || len(dc) != len(db) {
		t.Fatalf("maps differ: B %q C %q", db, dc)
	}
	for k, v := range db {
		if !bytes.Equal(dc[k], v) {
			t.Fatalf("key %q: B %q C %q", k, v, dc[k])
		}
	}
}

func TestTTLSeconds(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Millisecond: "1s", time.Second: "1s", 1001 * time.Millisecond: "2s", 90 * time.Second: "90s",
	} {
		if got := TTLSeconds(d); got != want {
			t.Errorf("TTLSeconds(%v) = %s, want %s", d, got, want)
		}
	}
}

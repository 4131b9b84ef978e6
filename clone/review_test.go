package clone

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/zbroker/zbroker/zmtp"
)

// A peer asking for snapshot after snapshot without reading them gets one
// at a time: the server never queues many copies of the map for it.
func TestOneSnapshotInFlightPerPeer(t *testing.T) {
	s := startServer(t, Options{})
	c := connect(t, clientOpts(s, ""))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	value := make([]byte, 1024) // 2 MB in all: more than socket buffers hold
	for i := 0; i < 2000; i++ {
		c.Set(fmt.Sprintf("k/%04d", i), value, 0)
	}
	if err := c.SetWait(ctx, "k/last", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	d, err := zmtp.Dial(ctx, s.Endpoints().Snapshot, zmtp.Options{SocketType: "DEALER"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const asks = 20
	for i := 0; i < asks; i++ {
		d.Send([][]byte{[]byte(KeyICANHAZ), []byte("k/")})
	}
	// Before anything is read, at most the first snapshot (plus the
	// Go client's own) has been made.
	waitFor(t, "the first snapshot", func() bool { return s.Stats().Snapshots >= 2 })
	if n := s.Stats().Snapshots; n > 2 {
		t.Fatalf("%d snapshots made for a peer that read none", n)
	}
	for got := 0; got < asks; {
		f, err := d.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if string(f[0]) == KeyKTHXBAI {
			got++
		}
	}
}

func TestManyTopicsMatchByLookup(t *testing.T) {
	sub := &subscriber{topics: map[string]int{}}
	for i := 0; i < 100; i++ {
		sub.topics[fmt.Sprintf("x/%03d", i)] = 1
	}
	sub.topics["a/b"] = 1
	for key, want := range map[string]bool{"a/b": true, "a/bc": true, "a/": false, "x/042/z": true, "y": false} {
		if got := sub.matches(key); got != want {
			t.Errorf("matches(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestSubscriberOverTopicLimitDisconnected(t *testing.T) {
	s := startServer(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	sub, err := zmtp.Dial(ctx, s.Endpoints().Publisher, zmtp.Options{SocketType: "SUB"})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	waitFor(t, "the subscriber", func() bool { return s.Stats().Subscribers == 1 })
	for i := 0; i <= maxTopics; i++ {
		sub.Send([][]byte{append([]byte{1}, fmt.Sprintf("t/%06d", i)...)})
	}
	waitFor(t, "the subscriber to be dropped", func() bool { return s.Stats().Subscribers == 0 })
}

func TestCancelledSetWaitForgetsItsWaiter(t *testing.T) {
	s := startServer(t, Options{})
	c := connect(t, clientOpts(s, "mine/"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.SetWait(ctx, "mine/k", []byte("v"), 0); err == nil {
		t.Fatal("SetWait with a cancelled context succeeded")
	}
	if err := c.SetWait(context.Background(), "other/k", []byte("v"), 0); err == nil {
		t.Fatal("SetWait outside the subtree would wait forever, want an error")
	}
	c.mu.Lock()
	n := len(c.waiters)
	c.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d waiters left after a cancelled SetWait", n)
	}
}

func TestConcurrentClose(t *testing.T) {
	s := startServer(t, Options{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); s.Close() }()
	}
	wg.Wait()
}

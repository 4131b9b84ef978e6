package clone

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/zbroker/zbroker/zmtp"
)

// A subscriber that stops reading is disconnected once its queue passes
// SubscriberQueueLimit, instead of being buffered for without end; other
// subscribers keep receiving every update.
func TestSlowSubscriberDisconnected(t *testing.T) {
	s := startServer(t, Options{SubscriberQueueLimit: 4 << 20})
	c := connect(t, clientOpts(s, ""))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	// A SUB that never calls Recv: its transport stops reading once its
	// own buffer is full, and the server's queue for it grows.
	stuck, err := zmtp.Dial(ctx, s.Endpoints().Publisher, zmtp.Options{SocketType: "SUB"})
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	stuck.Send([][]byte{{1}}) // subscribe to everything
	waitFor(t, "two subscribers", func() bool { return s.Stats().Subscribers == 2 })
	value := bytes.Repeat([]byte("v"), 10<<10)
	for i := 0; i < 3000; i++ { // 30 MiB of updates
		set := c.Set
		if i%50 == 0 { // keep the reading client within 50 updates
			set = func(k string, v []byte, ttl time.Duration) error { return c.SetWait(ctx, k, v, ttl) }
		}
		if err := set("k", value, 0); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the stuck subscriber to be dropped", func() bool { return s.Stats().Subscribers == 1 })
	if c.Syncs() != 1 {
		t.Fatalf("the reading client had to resynchronize (%d syncs): it was dropped too", c.Syncs())
	}
	if err := c.SetWait(ctx, "last", []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	if v, ok := c.Get("last"); !ok || string(v) != "x" {
		t.Fatalf("reading subscriber missed the last update: %q %v", v, ok)
	}
}

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

package clone

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestSetGetDelete(t *testing.T) {
	s := startServer(t, Options{})
	a := connect(t, clientOpts(s, ""))
	b := connect(t, clientOpts(s, ""))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	w, stop := b.Watch()
	defer stop()
	if err := a.SetWait(ctx, "/x/1", []byte("one"), 0); err != nil {
		t.Fatal(err)
	}
	if v, ok := a.Get("/x/1"); !ok || string(v) != "one" {
		t.Fatalf("a.Get = %q %v", v, ok)
	}
	u := nextUpdate(t, w)
	if u.Key != "/x/1" || string(u.Value) != "one" || u.Seq != 1 {
		t.Fatalf("b saw %+v", u)
	}
	if err := a.Delete("/x/1"); err != nil {
		t.Fatal(err)
	}
	u = nextUpdate(t, w)
	if u.Key != "/x/1" || u.Value != nil || u.Seq != 2 {
		t.Fatalf("b saw %+v", u)
	}
	if _, ok := b.Get("/x/1"); ok {
		t.Fatal("deleted key still in b's copy")
	}
	st := s.Stats()
	if st.Keys != 0 || st.Sequence != 2 || st.Updates != 2 || st.Subscribers != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSubtreeAndSnapshot(t *testing.T) {
	s := startServer(t, Options{})
	w := connect(t, clientOpts(s, ""))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for _, k := range []string{"/a/1", "/a/2", "/b/1", "/ab"} {
		if err := w.SetWait(ctx, k, []byte("v"+k), 0); err != nil {
			t.Fatal(err)
		}
	}
	sub := connect(t, clientOpts(s, "/a/"))
	if got := sub.Dump(""); len(got) != 2 || string(got["/a/1"]) != "v/a/1" || string(got["/a/2"]) != "v/a/2" {
		t.Fatalf("snapshot of /a/ = %q", got)
	}
	ch, stop := sub.Watch()
	defer stop()
	w.Set("/b/2", []byte("no"), 0)
	w.Set("/a/3", []byte("yes"), 0)
	if u := nextUpdate(t, ch); u.Key != "/a/3" {
		t.Fatalf("subtree client saw %+v", u)
	}
	if sub.Seq() != 6 {
		t.Fatalf("seq %d", sub.Seq())
	}
}

func TestTTLExpiryPublishesDelete(t *testing.T) {
	s := startServer(t, Options{})
	c := connect(t, clientOpts(s, ""))
	ch, stop := c.Watch()
	defer stop()
	c.Set("/eph", []byte("soon gone"), 150*time.Millisecond)
	c.Set("/keep", []byte("stays"), 0)
	start := time.Now()
	got := []Update{nextUpdate(t, ch), nextUpdate(t, ch), nextUpdate(t, ch)}
	if got[2].Key != "/eph" || got[2].Value != nil || got[2].Seq != 3 {
		t.Fatalf("third update %+v, want delete of /eph", got[2])
	}
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Fatalf("expired after %v", el)
	}
	if _, ok := c.Get("/eph"); ok {
		t.Fatal("expired key still present")
	}
	if st := s.Stats(); st.Expired != 1 || st.Keys != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Overwriting an ephemeral value with a permanent one cancels expiry.
	c.Set("/eph2", []byte("x"), 100*time.Millisecond)
	c.Set("/eph2", []byte("y"), 0)
	nextUpdate(t, ch)
	nextUpdate(t, ch)
	time.Sleep(250 * time.Millisecond)
	if v, ok := c.Get("/eph2"); !ok || string(v) != "y" {
		t.Fatalf("/eph2 = %q %v", v, ok)
	}
}

// A client joining while updates flow ends with exactly the writer's map,
// and its watch sees every update above its snapshot once, in order.
func TestLateJoinerConsistent(t *testing.T) {
	s := startServer(t, Options{})
	w := connect(t, clientOpts(s, ""))
	const n = 10000
	done := make(chan struct{})
	watching := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			if i == 3*n/4 {
				<-watching // so the watch has updates to see
			}
			w.Set(fmt.Sprintf("/k/%d", i%500), []byte(fmt.Sprint(i)), 0)
		}
	}()
	waitFor(t, "some updates", func() bool { return s.Stats().Sequence > 1000 })
	late := connect(t, clientOpts(s, "/k/"))
	ch, stop := late.Watch()
	defer stop()
	close(watching)
	<-done
	waitFor(t, "late joiner to catch up", func() bool { return late.Seq() == n })
	waitFor(t, "writer to catch up", func() bool { return w.Seq() == n })
	want, got := w.Dump(""), late.Dump("")
	if len(want) != 500 || len(got) != 500 {
		t.Fatalf("sizes %d %d", len(want), len(got))
	}
	for k, v := range want {
		if string(got[k]) != string(v) {
			t.Fatalf("%s: late %q, writer %q", k, got[k], v)
		}
	}
	var last uint64
	for last < n {
		u := nextUpdate(t, ch)
		if u.Seq <= last {
			t.Fatalf("update %d after %d", u.Seq, last)
		}
		last = u.Seq
	}
}

// After a restart the client notices (connection lost), resynchronizes
// from the new, empty server and reports the lost keys as deletes.
func TestClientSurvivesRestart(t *testing.T) {
	name := uniqName(t)
	s := startServer(t, Options{Name: name})
	c := connect(t, clientOpts(s, ""))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := c.SetWait(ctx, "/old", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	ch, stop := c.Watch()
	defer stop()
	s.Close()
	s2 := startServer(t, Options{Name: name})
	u := nextUpdate(t, ch)
	if u.Key != "/old" || u.Value != nil || !u.Resync {
		t.Fatalf("after restart %+v, want resync delete of /old", u)
	}
	waitFor(t, "resync", func() bool { return c.Syncs() == 2 })
	var err error
	waitFor(t, "set on new server", func() bool {
		err = c.SetWait(ctx, "/new", []byte("2"), 0)
		return err == nil
	})
	if c.Seq() != 1 || s2.Stats().Sequence != 1 {
		t.Fatalf("seq %d", c.Seq())
	}
}

// A silent server (no HUGZ) is detected: the client resyncs.
func TestSilentServerDetected(t *testing.T) {
	s := startServer(t, Options{HeartbeatInterval: time.Hour})
	o := clientOpts(s, "")
	o.HeartbeatTimeout = 200 * time.Millisecond
	c := connect(t, o)
	waitFor(t, "resync", func() bool { return c.Syncs() >= 2 })
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

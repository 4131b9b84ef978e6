package clone

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/testsupport"
	"github.com/zbroker/zbroker/zmtp"
)

func dialRaw(t *testing.T, ep, typ string) *zmtp.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := zmtp.Dial(ctx, ep, zmtp.Options{SocketType: typ, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func recvMsg(t *testing.T, c *zmtp.Conn) KVMsg {
	t.Helper()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
		case <-time.After(testTimeout):
			c.Close()
		}
	}()
	f, err := c.Recv()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The snapshot is framed as CHP says, tells an ephemeral value's remaining
// time to live, and ends with KTHXBAI carrying the current sequence and
// the subtree. Bad requests are dropped; the connection still works.
func TestSnapshotFraming(t *testing.T) {
	s := startServer(t, Options{})
	c := connect(t, clientOpts(s, ""))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c.SetWait(ctx, "/s/eph", []byte("e"), 10*time.Second)
	c.SetWait(ctx, "/s/perm", []byte("p"), 0)
	c.SetWait(ctx, "/t/other", []byte("o"), 0)
	d := dialRaw(t, s.Endpoints().Snapshot, "DEALER")
	d.Send([][]byte{[]byte("ICANHAZ?")})                // too short
	d.Send([][]byte{[]byte("GIMME"), []byte("/s/")})    // wrong command
	d.Send([][]byte{[]byte(KeyICANHAZ), []byte("/s/")}) // good
	eph, perm, end := recvMsg(t, d), recvMsg(t, d), recvMsg(t, d)
	if eph.Key != "/s/eph" || eph.Seq != 1 || len(eph.UUID) != 16 || string(eph.Body) != "e" {
		t.Fatalf("first KVSYNC %+v", eph)
	}
	left, _ := eph.Prop("ttl")
	if f, err := strconv.ParseFloat(left, 64); err != nil || f > 10 || f < 9 {
		t.Fatalf("ttl left %q", left)
	}
	if perm.Key != "/s/perm" || perm.Seq != 2 {
		t.Fatalf("second KVSYNC %+v", perm)
	}
	if end.Key != KeyKTHXBAI || end.Seq != 3 || string(end.Body) != "/s/" || len(end.UUID) != 0 {
		t.Fatalf("KTHXBAI %+v", end)
	}
	if st := s.Stats(); st.Rejected != 2 || st.Snapshots != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// Subscribing to HUGZ brings one at once (the client's proof that its
// subscriptions are active); cancelling a subscription stops updates.
func TestSubscriptions(t *testing.T) {
	s := startServer(t, Options{HeartbeatInterval: time.Hour})
	sub := dialRaw(t, s.Endpoints().Publisher, "SUB")
	sub.Send([][]byte{[]byte("\x01/a/")})
	sub.Send([][]byte{[]byte("\x01HUGZ")})
	if m := recvMsg(t, sub); m.Key != KeyHUGZ || m.Seq != 0 {
		t.Fatalf("got %+v, want HUGZ", m)
	}
	pub := dialRaw(t, s.Endpoints().Collector, "PUB")
	set := func(k string) {
		m := KVMsg{Key: k, Body: []byte("v")}
		f, _ := m.Encode()
		pub.Send(f)
	}
	set("/b/1")
	set("/a/1")
	if m := recvMsg(t, sub); m.Key != "/a/1" || m.Seq != 2 {
		t.Fatalf("got %+v", m)
	}
	sub.Send([][]byte{[]byte("\x00/a/")})
	sub.Send([][]byte{[]byte("\x01/b/")})
	// Every subscription while subscribed to HUGZ brings one: now both
	// messages before it are in effect.
	if m := recvMsg(t, sub); m.Key != KeyHUGZ {
		t.Fatalf("got %+v, want HUGZ", m)
	}
	set("/a/2")
	set("/b/2")
	if m := recvMsg(t, sub); m.Key != "/b/2" {
		t.Fatalf("got %+v after cancelling /a/", m)
	}
}

// A rejected update is logged at Warn with its reason (an unparsable ttl
// names the key and the value), and a peer sending many is rate-limited
// in the log, not in the count.
func TestRejectedUpdateLogged(t *testing.T) {
	var log testsupport.Buffer
	s := startServer(t, Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	pub := dialRaw(t, s.Endpoints().Collector, "PUB")
	uuid := make([]byte, 16)
	pub.Send(frames("/eph/x", 0, uuid, []byte("ttl=soon\n"), []byte("v")))
	waitFor(t, "first rejection", func() bool { return s.Stats().Rejected == 1 })
	if l := log.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, `ttl \"soon\" is not a number`) || !strings.Contains(l, `/eph/x`) {
		t.Fatalf("log of a rejected update:\n%s", l)
	}
	for i := 0; i < 20; i++ {
		pub.Send(frames("/eph/x", 0, uuid, []byte("ttl=-1\n"), []byte("v")))
	}
	waitFor(t, "21 rejections", func() bool { return s.Stats().Rejected == 21 })
	if n := strings.Count(log.String(), "message rejected"); n != rejectLogBurst {
		t.Fatalf("%d rejections logged at Warn, want %d (rate-limited):\n%s", n, rejectLogBurst, log.String())
	}
}

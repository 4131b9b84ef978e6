package zmtp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestGoEcho: our DEALER dialing our ROUTER, over every transport, with
// multipart messages, empty frames and 16 MiB frames, pipelined.
func TestGoEcho(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ts := startServer(t, tr.endpoint(t), Options{}, nil)
			c := dialT(t, ts.endpoint(), Options{Identity: []byte("client-1")})
			ev := ts.next(Connected)
			if ev.Conn.PeerType() != "DEALER" || string(ev.Conn.Identity()) != "client-1" || ev.Conn.Minor() != 1 {
				t.Fatalf("server sees peer %q identity %q minor %d", ev.Conn.PeerType(), ev.Conn.Identity(), ev.Conn.Minor())
			}
			if c.PeerType() != "ROUTER" || c.Minor() != 1 {
				t.Fatalf("client sees peer %q minor %d", c.PeerType(), c.Minor())
			}
			msgs := testMessages()
			for _, m := range msgs {
				if err := c.Send(m); err != nil {
					t.Fatal(err)
				}
			}
			for i, m := range msgs {
				if got := mustRecv(t, c); !equalFrames(got, m) {
					t.Fatalf("echo %d: got %s, want %s", i, describe(got), describe(m))
				}
			}
			c.Close()
			dev := ts.next(Disconnected)
			if dev.Conn != ev.Conn || dev.Err != io.EOF {
				t.Fatalf("Disconnected: conn %d err %v, want conn %d io.EOF", dev.Conn.ID(), dev.Err, ev.Conn.ID())
			}
			if err := ev.Conn.Send([][]byte{[]byte("late")}); err != ErrClosed {
				t.Fatalf("Send after Disconnected: got %v, want ErrClosed", err)
			}
		})
	}
}

// TestRecvEnds: Recv on a dialed connection returns buffered messages, then
// io.EOF once the listener side closed it, and ErrClosed after our own
// Close; the listener sees ErrClosed for a connection it closed itself.
func TestRecvEnds(t *testing.T) {
	ts := startServer(t, abstractEndpoint(t), Options{}, func(ev Event) {
		ev.Conn.Send(ev.Frames)
		if string(ev.Frames[0]) == "bye" {
			ev.Conn.Close()
		}
	})
	c := dialT(t, ts.endpoint(), Options{})
	ts.next(Connected)
	c.Send([][]byte{[]byte("one")})
	c.Send([][]byte{[]byte("bye")})
	for _, want := range []string{"one", "bye"} {
		if got := mustRecv(t, c); string(got[0]) != want {
			t.Fatalf("got %q, want %q", got[0], want)
		}
	}
	if _, err := recvTimeout(t, c, testTimeout); err != io.EOF {
		t.Fatalf("Recv after the peer closed: got %v, want io.EOF", err)
	}
	if ev := ts.next(Disconnected); ev.Err != ErrClosed {
		t.Fatalf("listener side closed the conn: Disconnected err %v, want ErrClosed", ev.Err)
	}
	if err := c.Send([][]byte{[]byte("x")}); err != ErrClosed {
		t.Fatalf("Send on an ended conn: got %v, want ErrClosed", err)
	}

	c2 := dialT(t, ts.endpoint(), Options{})
	ts.next(Connected)
	c2.Close()
	if _, err := recvTimeout(t, c2, testTimeout); err != ErrClosed {
		t.Fatalf("Recv after Close: got %v, want ErrClosed", err)
	}
	if ev := ts.next(Disconnected); ev.Err != io.EOF {
		t.Fatalf("peer closed: Disconnected err %v, want io.EOF", ev.Err)
	}
}

// TestCommandsFromPeer: PINGs are answered with PONG carrying the ping
// context (at most 16 bytes) and never reach the owner; unknown commands
// and PONGs are ignored; protocol violations end the connection with a
// ProtocolError.
func TestCommandsFromPeer(t *testing.T) {
	ts := startServer(t, abstractEndpoint(t), Options{}, nil)

	p := rawDial(t, ts.endpoint())
	p.handshake(1, "DEALER")
	ts.next(Connected)
	ping := func(ctx string) []byte { return appendCommand(nil, "PING", append([]byte{0, 10}, ctx...)) }
	// One PING at a time: PINGs that arrive while a PONG still waits to
	// be written share it (see TestPingFloodBounded).
	var pongs []string
	for _, ctx := range []string{"ctx-123", strings.Repeat("abcdefgh", 4), ""} {
		p.nc.Write(ping(ctx))
		flags, body, err := readFrame(p.br, 1<<20)
		if err != nil {
			t.Fatalf("reading PONG: %v", err)
		}
		name, data, err := parseCommand(body)
		if flags&flagCommand == 0 || err != nil || name != "PONG" {
			t.Fatalf("got %q (flags %x, %v), want PONG", body, flags, err)
		}
		pongs = append(pongs, string(data))
	}
	if want := []string{"ctx-123", "abcdefghabcdefgh", ""}; fmt.Sprint(pongs) != fmt.Sprint(want) {
		t.Fatalf("PONG contexts %q, want %q", pongs, want)
	}
	var wire []byte
	wire = append(wire, appendCommand(nil, "PONG", []byte("x"))...)
	wire = append(wire, appendCommand(nil, "FUTURE", []byte("whatever"))...)
	wire = append(wire, encodeMessage([]byte("real"), []byte("message"))...)
	p.nc.Write(wire)
	waitFor(t, testTimeout, "the echo of the one real message", func() bool { return ts.msgs.Load() >= 1 })
	time.Sleep(50 * time.Millisecond)
	if n := ts.msgs.Load(); n != 1 {
		t.Fatalf("owner got %d messages, want 1 (commands must not be delivered)", n)
	}

	// A PING or PONG between the frames of a message (libzmq puts its
	// PONG wherever it is in its output) is handled; the message arrives
	// whole.
	wire = append([]byte{flagMore, 3, 'o', 'n', 'e'}, ping("mid")...)
	wire = append(wire, appendCommand(nil, "PONG", nil)...)
	wire = append(wire, 0, 3, 't', 'w', 'o')
	p.nc.Write(wire)
	waitFor(t, testTimeout, "the message with a PING inside", func() bool { return ts.msgs.Load() >= 2 })
	if got, cmds, err := p.recv(); err != nil || describe(got) != describe([][]byte{[]byte("real"), []byte("message")}) {
		t.Fatalf("first echo %s %v", describe(got), err)
	} else if got, cmds2, err := p.recv(); err != nil || describe(got) != describe([][]byte{[]byte("one"), []byte("two")}) ||
		!strings.Contains(strings.Join(append(cmds, cmds2...), ","), "PONG") {
		t.Fatalf("echo of the message with a PING inside: %s (commands %v %v) %v", describe(got), cmds, cmds2, err)
	}

	violations := map[string][]byte{
		"ERROR":             appendCommand(nil, "ERROR", []byte("\x04nope")),
		"READY again":       appendCommand(nil, "READY", appendMetadata(nil, [2]string{"Socket-Type", "DEALER"})),
		"command in multi":  append([]byte{flagMore, 1, 'a'}, appendCommand(nil, "SUBSCRIBE", []byte("x"))...),
		"reserved flag":     {0x10, 0},
		"command with MORE": {flagCommand | flagMore, 5, 4, 'P', 'O', 'N', 'G'},
		"short PING":        appendCommand(nil, "PING", []byte{1}),
		"empty command":     {flagCommand, 0},
	}
	for name, wire := range violations {
		p := rawDial(t, ts.endpoint())
		p.handshake(1, "DEALER")
		ts.next(Connected)
		p.nc.Write(wire)
		ev := ts.next(Disconnected)
		var pe *ProtocolError
		if !errors.As(ev.Err, &pe) {
			t.Errorf("%s: Disconnected err %v, want a ProtocolError", name, ev.Err)
		}
	}
	if n := ts.msgs.Load(); n != 2 {
		t.Fatalf("owner got %d messages, want 2", n)
	}
}

// TestHandshakeTimeout: peers that never finish the handshake are dropped
// after HandshakeTimeout and never reported.
func TestHandshakeTimeout(t *testing.T) {
	const hto = 300 * time.Millisecond
	ts := startServer(t, abstractEndpoint(t), Options{HandshakeTimeout: hto}, nil)
	cases := map[string]func(p *rawPeer){
		"silent":          func(p *rawPeer) {},
		"partial":         func(p *rawPeer) { p.nc.Write(greeting("NULL", false)[:11]) },
		"greeting only":   func(p *rawPeer) { p.nc.Write(greeting("NULL", false)) },
		"partial READY":   func(p *rawPeer) { p.nc.Write(greeting("NULL", false)); p.nc.Write([]byte{flagCommand, 40, 5}) },
		"message no hand": func(p *rawPeer) { p.nc.Write(greeting("NULL", false)); p.nc.Write([]byte{0, 1, 'x'}) },
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(cases))
	for name, act := range cases {
		p := rawDial(t, ts.endpoint())
		start := time.Now()
		act(p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := readGreeting(p.br); err != nil {
				errs <- fmt.Errorf("%s: server greeting: %v", name, err)
				return
			}
			_, err := io.Copy(io.Discard, p.br) // READY, if any, then the end
			elapsed := time.Since(start)
			if err != nil && !isReset(err) {
				errs <- fmt.Errorf("%s: got %v, want the server to hang up", name, err)
			} else if name != "message no hand" && elapsed < hto-50*time.Millisecond {
				errs <- fmt.Errorf("%s: dropped after %v, before the %v handshake timeout", name, elapsed, hto)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ts.quiet(100 * time.Millisecond)
}

// TestTooLarge: a peer announcing a 1 TiB frame, or a multipart message
// over MaxMessageSize in total, is disconnected with ErrTooLarge without
// the memory being reserved, while another peer keeps being served.
func TestTooLarge(t *testing.T) {
	echoOK := func(t *testing.T, c *Conn, tag string) {
		t.Helper()
		c.Send([][]byte{[]byte(tag)})
		if got := mustRecv(t, c); string(got[0]) != tag {
			t.Fatalf("good peer: got %q, want %q", got[0], tag)
		}
	}
	t.Run("1TiB-frame", func(t *testing.T) {
		ts := startServer(t, abstractEndpoint(t), Options{}, nil)
		good := dialT(t, ts.endpoint(), Options{})
		ts.next(Connected)
		echoOK(t, good, "before")
		before := heapAlloc()
		p := rawDial(t, ts.endpoint())
		p.handshake(1, "DEALER")
		ts.next(Connected)
		p.nc.Write(append(binary.BigEndian.AppendUint64([]byte{flagLong}, 1<<40), make([]byte, 4096)...))
		ev := ts.next(Disconnected)
		if !errors.Is(ev.Err, ErrTooLarge) {
			t.Fatalf("Disconnected err %v, want ErrTooLarge", ev.Err)
		}
		echoOK(t, good, "after")
		if d := int64(heapAlloc()) - int64(before); d > 100<<20 {
			t.Fatalf("heap grew by %d MiB", d>>20)
		}
	})
	t.Run("1TiB-frame-within-limit-stalls", func(t *testing.T) {
		// Even when the limit allows it, a huge frame is only allocated
		// as its bytes arrive.
		ts := startServer(t, abstractEndpoint(t), Options{MaxMessageSize: 1 << 41}, nil)
		good := dialT(t, ts.endpoint(), Options{})
		ts.next(Connected)
		before := heapAlloc()
		p := rawDial(t, ts.endpoint())
		p.handshake(1, "DEALER")
		ts.next(Connected)
		p.nc.Write(append(binary.BigEndian.AppendUint64([]byte{flagLong}, 1<<40), make([]byte, 3<<20)...))
		echoOK(t, good, "during")
		time.Sleep(100 * time.Millisecond)
		if d := int64(heapAlloc()) - int64(before); d > 100<<20 {
			t.Fatalf("heap grew by %d MiB for 3 MiB received", d>>20)
		}
		p.nc.Close()
		if ev := ts.next(Disconnected); ev.Err != io.ErrUnexpectedEOF {
			t.Fatalf("Disconnected err %v, want io.ErrUnexpectedEOF", ev.Err)
		}
	})
	t.Run("multipart", func(t *testing.T) {
		const limit = 1 << 20
		ts := startServer(t, abstractEndpoint(t), Options{MaxMessageSize: limit}, nil)
		good := dialT(t, ts.endpoint(), Options{})
		ts.next(Connected)

		// Just under the limit is fine.
		p := rawDial(t, ts.endpoint())
		p.handshake(1, "DEALER")
		ts.next(Connected)
		ok := [][]byte{make([]byte, limit/2), make([]byte, limit/2-2*perFrameCost)}
		go p.send(ok...)
		if got, _, err := p.recv(); err != nil || !equalFrames(got, ok) {
			t.Fatalf("message within the limit: %v, %s", err, describe(got))
		}

		for name, frames := range map[string][][]byte{
			"two halves and more": {make([]byte, 600<<10), make([]byte, 600<<10)},
			"many empty frames":   make([][]byte, limit/perFrameCost+10),
			"small then huge":     {[]byte("a"), make([]byte, limit)},
		} {
			p := rawDial(t, ts.endpoint())
			p.handshake(1, "DEALER")
			ts.next(Connected)
			go p.send(frames...) // fails once the server hangs up
			ev := ts.next(Disconnected)
			if !errors.Is(ev.Err, ErrTooLarge) {
				t.Errorf("%s: Disconnected err %v, want ErrTooLarge", name, ev.Err)
			}
			echoOK(t, good, name)
		}
	})
}

// TestSlowPeer: a peer that floods requests and never reads its replies
// does not stall replies to another peer, and stops being read once its
// send queue is full: the messages taken from it plateau near
// SendQueueMessages + EventBuffer batches (each of at most what the queue
// had room for) instead of growing without bound.
func TestSlowPeer(t *testing.T) {
	const sqm, eb = 16, 4
	reply := make([]byte, 256<<10) // big replies fill the kernel buffers fast
	var fromSlow atomic.Int64
	ts := startServer(t, pathEndpoint(t), Options{SendQueueMessages: sqm, EventBuffer: eb}, func(ev Event) {
		if string(ev.Conn.Identity()) == "slow" {
			fromSlow.Add(1)
		}
		ev.Conn.Send([][]byte{ev.Frames[0], reply})
	})

	slow := rawDial(t, ts.endpoint())
	slow.handshake(1, "DEALER", [2]string{"Identity", "slow"})
	ts.next(Connected)
	const flood = 5000
	go func() {
		for i := 0; i < flood; i++ {
			if slow.send([]byte("slow")) != nil {
				return // closed at the end of the test
			}
		}
	}()
	stable := func() int64 {
		t.Helper()
		last, since := fromSlow.Load(), time.Now()
		deadline := time.Now().Add(testTimeout)
		for time.Since(since) < 500*time.Millisecond {
			if time.Now().After(deadline) {
				t.Fatalf("messages read from the slow peer never stopped growing (%d)", last)
			}
			time.Sleep(20 * time.Millisecond)
			if n := fromSlow.Load(); n != last {
				last, since = n, time.Now()
			}
		}
		return last
	}
	plateau := stable()

	good := dialT(t, ts.endpoint(), Options{Identity: []byte("good")})
	ts.next(Connected)
	const n = 100
	for i := 0; i < n; i++ {
		good.Send([][]byte{fmt.Appendf(nil, "%d", i)})
	}
	for i := 0; i < n; i++ {
		got := mustRecv(t, good)
		if string(got[0]) != fmt.Sprint(i) || len(got[1]) != len(reply) {
			t.Fatalf("good peer reply %d: %s", i, describe(got))
		}
	}
	after := stable()
	t.Logf("messages read from the slow peer: %d, then %d (of %d sent)", plateau, after, flood)
	if after != plateau {
		t.Errorf("slow peer kept being read while stalled: %d then %d", plateau, after)
	}
	// Its queue, what the event channel holds, the batch in hand (each
	// batch at most what the queue had room for), and a few replies in
	// kernel buffers.
	if limit := int64(sqm + (eb+1)*sqm + 32); after > limit || after < sqm {
		t.Errorf("read %d messages from a peer that never reads; want between %d and %d", after, sqm, limit)
	}
}

// TestUnsent: messages accepted by Send are either written to the socket
// or returned, in order, in the Disconnected event's Unsent; after
// Disconnected, Send fails with ErrClosed.
func TestUnsent(t *testing.T) {
	ts := startServer(t, pathEndpoint(t), Options{}, nil)
	p := rawDial(t, ts.endpoint())
	p.handshake(1, "DEALER")
	c := ts.next(Connected).Conn

	payload := make([]byte, 64<<10)
	msg := func(i int) [][]byte { return [][]byte{binary.BigEndian.AppendUint64(nil, uint64(i)), payload} }
	const first = 400 // 25 MiB: far more than the kernel buffers hold
	for i := 0; i < first; i++ {
		if err := c.SendRef(msg(i), i); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	const read = 5
	for i := 0; i < read; i++ {
		got, _, err := p.recv()
		if err != nil || len(got) != 2 || binary.BigEndian.Uint64(got[0]) != uint64(i) {
			t.Fatalf("peer message %d: %v %s", i, err, describe(got))
		}
	}

	// Keep sending while the peer dies, until Send refuses.
	accepted := make(chan int, 1)
	go func() {
		i := first
		for ; i < 1_000_000; i++ {
			if c.SendRef(msg(i), i) != nil {
				break
			}
			runtime.Gosched()
		}
		accepted <- i
	}()
	p.nc.Close()
	ev := ts.next(Disconnected)
	var total int
	select {
	case total = <-accepted:
	case <-time.After(testTimeout):
		t.Fatal("Send never returned ErrClosed after the peer died")
	}
	if ev.Err == nil {
		t.Fatal("Disconnected without an error")
	}
	if len(ev.Unsent) == 0 {
		t.Fatal("no Unsent messages although 25 MiB could not have been written")
	}
	k := ev.Unsent[0].Ref.(int)
	for j, o := range ev.Unsent {
		if o.Ref != k+j || binary.BigEndian.Uint64(o.Frames[0]) != uint64(k+j) || len(o.Frames[1]) != len(payload) {
			t.Fatalf("Unsent[%d] has ref %v, want %d: not the contiguous, ordered tail", j, o.Ref, k+j)
		}
	}
	if last := k + len(ev.Unsent); last != total {
		t.Fatalf("Unsent ends before message %d, but Send accepted up to %d: messages lost", last, total)
	}
	if k < read {
		t.Fatalf("message %d was both delivered and returned in Unsent", k)
	}
	// Written but never read by the dead peer: at most what the kernel
	// buffers hold.
	if k-read > 64 {
		t.Fatalf("%d messages (%d MiB) counted as written to a socket nobody read", k-read, (k-read)>>4)
	}
	t.Logf("sent %d, peer read %d, written %d, unsent %d, err %v", total, read, k, len(ev.Unsent), ev.Err)
	if err := c.Send(msg(0)); err != ErrClosed {
		t.Fatalf("Send after Disconnected: got %v, want ErrClosed", err)
	}
}

// TestSameIdentity: two live peers announcing the same Identity are
// distinct connections and each gets only its own replies.
func TestSameIdentity(t *testing.T) {
	ts := startServer(t, abstractEndpoint(t), Options{}, nil)
	a := dialT(t, ts.endpoint(), Options{Identity: []byte("twin")})
	b := dialT(t, ts.endpoint(), Options{Identity: []byte("twin")})
	ca, cb := ts.next(Connected).Conn, ts.next(Connected).Conn
	if ca == cb || ca.ID() == cb.ID() || string(ca.Identity()) != "twin" || string(cb.Identity()) != "twin" {
		t.Fatalf("connections %d %q and %d %q", ca.ID(), ca.Identity(), cb.ID(), cb.Identity())
	}
	const n = 200
	var wg sync.WaitGroup
	for _, peer := range []struct {
		tag string
		c   *Conn
	}{{"A", a}, {"B", b}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				peer.c.Send([][]byte{[]byte(peer.tag), fmt.Appendf(nil, "%d", i)})
			}
		}()
	}
	wg.Wait()
	for _, peer := range []struct {
		tag string
		c   *Conn
	}{{"A", a}, {"B", b}} {
		for i := 0; i < n; i++ {
			got := mustRecv(t, peer.c)
			if string(got[0]) != peer.tag || string(got[1]) != fmt.Sprint(i) {
				t.Fatalf("peer %s reply %d: got %s", peer.tag, i, describe(got))
			}
		}
	}
}

// TestNoGoroutineLeak: 200 connections that end every which way, then
// Socket.Close, leave no goroutine behind. Close must not wait for the
// handshake timeout of peers stuck mid-handshake.
func TestNoGoroutineLeak(t *testing.T) {
	runtime.GC()
	time.Sleep(100 * time.Millisecond)
	baseline := runtime.NumGoroutine()

	ts := startServer(t, abstractEndpoint(t), Options{HandshakeTimeout: time.Minute}, nil)
	var open []*rawPeer
	for i := 0; i < 200; i++ {
		p := rawDial(t, ts.endpoint())
		switch i % 5 {
		case 0: // complete, talk, then abrupt close
			p.handshake(1, "DEALER")
			p.send([]byte("hi"))
			p.nc.Close()
		case 1: // stuck mid-handshake
			p.nc.Write(greeting("NULL", false)[:20])
			open = append(open, p)
		case 2: // garbage
			p.nc.Write(bytes.Repeat([]byte{0x42}, 64))
		case 3: // connect and leave
			p.nc.Close()
		case 4: // complete and stay
			p.handshake(1, "DEALER")
			open = append(open, p)
		}
	}
	// A few of our own dialed connections, closed from our side.
	for i := 0; i < 5; i++ {
		c := dialT(t, ts.endpoint(), Options{})
		c.Send([][]byte{[]byte("x")})
		mustRecv(t, c)
		c.Close()
		recvTimeout(t, c, testTimeout)
	}
	waitFor(t, testTimeout, "80 handshakes", func() bool { return len(ts.life) >= 80 })

	start := time.Now()
	ts.close()
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("Socket.Close took %v with peers stuck mid-handshake", d)
	}
	deadline := time.Now().Add(testTimeout)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, baseline %d:\n%s", runtime.NumGoroutine(), baseline, goroutineDump())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, p := range open {
		p.nc.SetReadDeadline(time.Now().Add(testTimeout))
		if _, err := io.Copy(io.Discard, p.br); err != nil && !isReset(err) {
			t.Fatalf("open peer not disconnected by Close: %v", err)
		}
	}
}

// TestCloseIsClean: closing a Socket logs no spurious accept failure and
// returns promptly even with a peer mid-handshake.
func TestCloseIsClean(t *testing.T) {
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Listen(abstractEndpoint(t), Options{SocketType: "ROUTER", Logger: logger, HandshakeTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	p := rawDial(t, s.Endpoint())
	p.nc.Write(greeting("NULL", false)[:5])
	time.Sleep(50 * time.Millisecond)
	done := make(chan struct{})
	go func() {
		s.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("Socket.Close waits for a peer stuck in its handshake")
	}
	if _, ok := <-s.Events(); ok {
		t.Fatal("event after Close")
	}
	if strings.Contains(logs.String(), "accept failed") {
		t.Fatalf("Close logged an accept failure:\n%s", logs.String())
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestHeartbeatDropsSilentPeer: with HeartbeatInterval set, a 3.1 peer
// that never answers our PINGs is dropped after HeartbeatTimeout.
func TestHeartbeatDropsSilentPeer(t *testing.T) {
	const ivl = 100 * time.Millisecond
	ts := startServer(t, abstractEndpoint(t), Options{HeartbeatInterval: ivl}, nil)
	start := time.Now() // before the server can start its clock
	p := rawDial(t, ts.endpoint())
	p.handshake(1, "DEALER")
	ts.next(Connected)
	type ping struct{ ttl uint16 }
	pings := make(chan []ping, 1)
	go func() {
		var got []ping
		for {
			flags, body, err := readFrame(p.br, 1<<20)
			if err != nil {
				pings <- got
				return
			}
			if name, data, _ := parseCommand(body); flags&flagCommand != 0 && name == "PING" && len(data) >= 2 {
				got = append(got, ping{binary.BigEndian.Uint16(data)})
			}
		}
	}()
	ev := ts.next(Disconnected)
	elapsed := time.Since(start)
	if !errors.Is(ev.Err, os.ErrDeadlineExceeded) {
		t.Fatalf("Disconnected err %v, want a timeout", ev.Err)
	}
	if elapsed < 3*ivl {
		t.Fatalf("dropped after %v, before the %v heartbeat timeout", elapsed, 3*ivl)
	}
	got := <-pings
	if len(got) == 0 {
		t.Fatal("no PING was sent")
	}
	if got[0].ttl != 3 {
		t.Fatalf("PING TTL %d deciseconds, want 3 (the 300ms timeout)", got[0].ttl)
	}
}

// TestHeartbeatKeepsQuietReceiver: a peer that answers PINGs but sends
// nothing else must stay connected while we stream messages to it (our
// traffic must not suppress our PINGs, or its silence looks like death).
func TestHeartbeatKeepsQuietReceiver(t *testing.T) {
	// Streaming lasts about three heartbeat timeouts.
	const ivl, timeout, n = 100 * time.Millisecond, 500 * time.Millisecond, 150
	opts := Options{HeartbeatInterval: ivl, HeartbeatTimeout: timeout}
	ts := startServer(t, abstractEndpoint(t), opts, func(ev Event) {
		go func() {
			for i := 0; i < n; i++ {
				if ev.Conn.Send([][]byte{fmt.Appendf(nil, "%d", i)}) != nil {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	})
	c := dialT(t, ts.endpoint(), Options{})
	ts.next(Connected)
	c.Send([][]byte{[]byte("stream please")})
	for i := 0; i < n; i++ {
		got, err := recvTimeout(t, c, testTimeout)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", i, n, err)
		}
		if string(got[0]) != fmt.Sprint(i) {
			t.Fatalf("got %q, want %d", got[0], i)
		}
	}
	ts.quiet(0)
}

// TestHeartbeatNotSentToZMTP30: PING does not exist in ZMTP 3.0, so a 3.0
// peer gets none and is not dropped for not answering.
func TestHeartbeatNotSentToZMTP30(t *testing.T) {
	ts := startServer(t, abstractEndpoint(t), Options{HeartbeatInterval: 30 * time.Millisecond}, nil)
	p := rawDial(t, ts.endpoint())
	p.handshake(0, "DEALER")
	if ev := ts.next(Connected); ev.Conn.Minor() != 0 {
		t.Fatalf("Minor %d, want 0", ev.Conn.Minor())
	}
	p.nc.SetReadDeadline(time.Now().Add(400 * time.Millisecond))
	if b, err := p.br.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("3.0 peer received %#x (%v), want nothing", b, err)
	}
	p.nc.SetReadDeadline(time.Now().Add(testTimeout))
	p.send([]byte("still"), []byte("here"))
	if got, cmds, err := p.recv(); err != nil || len(cmds) != 0 || string(got[0]) != "still" {
		t.Fatalf("echo: %v %q %s", err, cmds, describe(got))
	}
	ts.quiet(0)
}

// TestPauseResume: after Pause no more messages are read beyond those
// already in hand (the rest of the batch Pause was called in, and a batch
// per event buffer slot and in the reader's hands); Resume delivers the
// rest in order; a paused peer that dies is still reported, with or
// without data pending.
func TestPauseResume(t *testing.T) {
	const eb = 1
	const maxAfter = (eb + 2) * maxBatch
	// server pauses a connection when it receives "pause" and hands every
	// message to the test.
	server := func(t *testing.T, endpoint string) (*testServer, func(string)) {
		got := make(chan string, 1000)
		ts := startServer(t, endpoint, Options{EventBuffer: eb}, func(ev Event) {
			if string(ev.Frames[0]) == "pause" {
				ev.Conn.Pause()
			}
			got <- string(ev.Frames[0])
		})
		expect := func(want string) {
			t.Helper()
			select {
			case s := <-got:
				if s != want {
					t.Fatalf("got message %q, want %q", s, want)
				}
			case <-time.After(testTimeout):
				t.Fatalf("message %q never delivered", want)
			}
		}
		return ts, expect
	}
	// delivered counts what arrives within d.
	delivered := func(ts *testServer, d time.Duration) int64 {
		before := ts.msgs.Load()
		time.Sleep(d)
		return ts.msgs.Load() - before
	}

	t.Run("resume", func(t *testing.T) {
		ts, expect := server(t, pathEndpoint(t))
		c := dialT(t, ts.endpoint(), Options{})
		srv := ts.next(Connected).Conn
		c.Send([][]byte{[]byte("pause")})
		const n = maxAfter + maxBatch
		for i := 1; i <= n; i++ {
			c.Send([][]byte{fmt.Appendf(nil, "%d", i)})
		}
		expect("pause")
		if extra := delivered(ts, 500*time.Millisecond); extra > maxAfter {
			t.Fatalf("%d messages delivered after Pause, want at most %d (already read)", extra, maxAfter)
		}
		srv.Resume()
		for i := 1; i <= n; i++ {
			expect(fmt.Sprint(i))
		}
		c.Close()
		ts.next(Disconnected)
	})

	for _, tc := range []struct {
		pending int
		tr      int
	}{{0, 1}, {50, 0}, {50, 1}, {50, 2}} {
		pending, tr := tc.pending, transports[tc.tr]
		t.Run(fmt.Sprintf("peer-dies-pending-%d-%s", pending, tr.name), func(t *testing.T) {
			ts, expect := server(t, tr.endpoint(t))
			c := dialT(t, ts.endpoint(), Options{})
			ts.next(Connected)
			// The reader delivers at most maxAfter more messages after
			// "pause" and then waits, paused, with the rest unread.
			c.Send([][]byte{[]byte("pause")})
			for i := 0; i < pending; i++ {
				c.Send([][]byte{fmt.Appendf(nil, "pending %d", i)})
			}
			expect("pause")
			// If the reader was already past its pause check, blocked in
			// a read, this one is read and then it finds itself paused.
			c.Send([][]byte{[]byte("last")})
			time.Sleep(100 * time.Millisecond)
			c.Close()
			start := time.Now()
			ev := ts.nextWithin(Disconnected, 10*time.Second)
			t.Logf("paused peer's death reported after %v: %v", time.Since(start), ev.Err)
			if extra := ts.msgs.Load() - 1; extra > maxAfter {
				t.Fatalf("%d messages delivered after Pause, want at most %d", extra, maxAfter)
			}
		})
	}
}

// TestWriterErrorReported: when writing fails first (the peer shut down
// its read side: EPIPE), Disconnected reports that error, not the timeout
// used to wake the reader, and returns the message in Unsent.
func TestWriterErrorReported(t *testing.T) {
	ts := startServer(t, pathEndpoint(t), Options{}, nil)
	p := rawDial(t, ts.endpoint())
	p.handshake(1, "DEALER")
	c := ts.next(Connected).Conn
	if err := p.nc.(*net.UnixConn).CloseRead(); err != nil {
		t.Fatal(err)
	}
	if err := c.SendRef([][]byte{[]byte("lost")}, "ref"); err != nil {
		t.Fatal(err)
	}
	ev := ts.next(Disconnected)
	if !errors.Is(ev.Err, syscall.EPIPE) {
		t.Fatalf("Disconnected err %v, want EPIPE from the writer", ev.Err)
	}
	if len(ev.Unsent) != 1 || ev.Unsent[0].Ref != "ref" {
		t.Fatalf("Unsent %v, want the one message", ev.Unsent)
	}
}

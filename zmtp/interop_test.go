package zmtp

import (
	"io"
	"testing"
	"time"
)

// Interop tests run real libzmq peers: pyzmq scripts under
// testdata/interop and a C client compiled from testdata/interop/client.c.
// Without python3-zmq / libzmq3-dev they skip, unless CI=true or
// ZBROKER_INTEROP=require, which makes that a failure.

// TestInteropPythonDealer: a libzmq DEALER talks to our ROUTER over every
// transport: multipart, empty frames, long frames, 16 MiB frames.
func TestInteropPythonDealer(t *testing.T) {
	py := zmqPython(t)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ts := startServer(t, tr.endpoint(t), Options{}, nil)
			runPeer(t, py, pyScript("dealer.py"), ts.endpoint(), "echo")
			if ev := ts.next(Connected); ev.Conn.PeerType() != "DEALER" || ev.Conn.Minor() != 1 {
				t.Fatalf("peer type %q minor %d", ev.Conn.PeerType(), ev.Conn.Minor())
			}
			ts.next(Disconnected)
		})
	}
}

// TestInteropPythonREQ: a libzmq REQ (which adds an empty delimiter
// frame) talks to our ROUTER over every transport.
func TestInteropPythonREQ(t *testing.T) {
	py := zmqPython(t)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ts := startServer(t, tr.endpoint(t), Options{}, nil)
			runPeer(t, py, pyScript("req.py"), ts.endpoint())
			if ev := ts.next(Connected); ev.Conn.PeerType() != "REQ" {
				t.Fatalf("peer type %q", ev.Conn.PeerType())
			}
		})
	}
}

// TestInteropC: a C libzmq DEALER talks to our ROUTER over every transport.
func TestInteropC(t *testing.T) {
	client := cClient(t)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ts := startServer(t, tr.endpoint(t), Options{}, nil)
			runPeer(t, client, ts.endpoint())
			if ev := ts.next(Connected); ev.Conn.PeerType() != "DEALER" {
				t.Fatalf("peer type %q", ev.Conn.PeerType())
			}
		})
	}
}

// TestInteropDialPythonRouter: our Dial(DEALER) against a libzmq ROUTER
// echo server, over every transport.
func TestInteropDialPythonRouter(t *testing.T) {
	py := zmqPython(t)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			bind := tr.endpoint(t)
			if tr.name == "tcp" {
				bind = "tcp://127.0.0.1:*"
			}
			proc := startPeer(t, py, pyScript("router_echo.py"), bind)
			endpoint := proc.endpoint(t)
			c := dialT(t, endpoint, Options{})
			if c.PeerType() != "ROUTER" {
				t.Fatalf("peer type %q", c.PeerType())
			}
			msgs := testMessages()
			for _, m := range msgs {
				c.Send(m)
			}
			for i, m := range msgs {
				if got := mustRecv(t, c); !equalFrames(got, m) {
					t.Fatalf("echo %d: got %s, want %s", i, describe(got), describe(m))
				}
			}
			c.Send([][]byte{[]byte("QUIT")})
			if got := mustRecv(t, c); len(got) != 1 || string(got[0]) != "BYE" {
				t.Fatalf("got %s, want BYE", describe(got))
			}
			if err := proc.wait(); err != nil {
				t.Fatal(err)
			}
			if _, err := recvTimeout(t, c, testTimeout); err != io.EOF {
				t.Fatalf("after the ROUTER exited: got %v, want io.EOF", err)
			}
		})
	}
}

// TestInteropPipelining: a libzmq DEALER sends hundreds, then 20,000,
// requests before reading any reply. Everything is answered, in order;
// a deadlock makes the script time out and fail.
func TestInteropPipelining(t *testing.T) {
	py := zmqPython(t)
	for _, c := range []struct {
		name        string
		count, size string
	}{
		{"600x4KiB", "600", "4096"},
		{"20000x16B", "20000", "16"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := startServer(t, abstractEndpoint(t), Options{}, nil)
			runPeer(t, py, pyScript("dealer.py"), ts.endpoint(), "pipeline", c.count, c.size)
			ts.next(Connected)
			ts.next(Disconnected)
		})
	}
}

// TestInteropHeartbeatFromLibzmq: libzmq PINGs us every 100 ms and drops
// the connection if nothing answers within 400 ms. We answer with PONG,
// never deliver the PINGs as messages, and the peer stays connected
// through 2.5 s of silence (the script's socket monitor fails on any
// disconnect; we see exactly one Connected).
func TestInteropHeartbeatFromLibzmq(t *testing.T) {
	py := zmqPython(t)
	var bad []string
	ts := startServer(t, abstractEndpoint(t), Options{}, func(ev Event) {
		if len(ev.Frames) != 2 || string(ev.Frames[0]) != "hb" {
			bad = append(bad, describe(ev.Frames))
		}
		ev.Conn.Send(ev.Frames)
	})
	runPeer(t, py, pyScript("dealer.py"), ts.endpoint(), "idle", "2.5", "1")
	ts.next(Connected)
	ts.next(Disconnected)
	ts.quiet(200 * time.Millisecond)
	ts.close()
	if len(bad) > 0 || ts.msgs.Load() != 11 {
		t.Fatalf("delivered %d messages (want 11), unexpected: %q", ts.msgs.Load(), bad)
	}
}

// TestInteropHeartbeatToLibzmq: with our HeartbeatInterval set, a libzmq
// peer (which answers PINGs) that stays silent for five heartbeat
// timeouts is not dropped (a heartbeat timeout would show as a timeout
// error instead of io.EOF when the script closes).
func TestInteropHeartbeatToLibzmq(t *testing.T) {
	py := zmqPython(t)
	opts := Options{HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: 400 * time.Millisecond}
	ts := startServer(t, abstractEndpoint(t), opts, nil)
	runPeer(t, py, pyScript("dealer.py"), ts.endpoint(), "idle", "2", "0")
	ts.next(Connected)
	if ev := ts.next(Disconnected); ev.Err != io.EOF {
		t.Fatalf("Disconnected err %v, want io.EOF (the peer closing, not a heartbeat timeout)", ev.Err)
	}
	ts.quiet(200 * time.Millisecond)
}

// TestInteropHeartbeatWhilePaused: a libzmq peer with heartbeats on (PING
// every 100 ms, drop after 400 ms without traffic) stays connected while
// we do not read it for 2 s, because we PING it meanwhile; all its
// requests are then answered on the same connection.
func TestInteropHeartbeatWhilePaused(t *testing.T) {
	py := zmqPython(t)
	n := 0
	ts := startServer(t, abstractEndpoint(t), Options{}, func(ev Event) {
		ev.Conn.Send(ev.Frames)
		// After the second request the reader stops before reading the
		// third, so the peer's PINGs wait unread.
		if n++; n == 2 {
			ev.Conn.Pause()
			time.AfterFunc(2*time.Second, ev.Conn.Resume)
		}
	})
	runPeer(t, py, pyScript("dealer.py"), ts.endpoint(), "idle", "0.2", "1")
	ts.next(Connected)
	ts.next(Disconnected)
	ts.quiet(200 * time.Millisecond)
	if n := ts.msgs.Load(); n != 11 {
		t.Fatalf("delivered %d messages, want 11", n)
	}
}

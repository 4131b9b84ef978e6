package zmtp

import (
	"bytes"
	"testing"
	"time"
)

// A ZMTP 3.1 SUB peer's SUBSCRIBE and CANCEL commands reach a PUB owner as
// the 3.0 subscription messages, in order with the peer's other messages.
func TestSubscribeCommandsBecomeMessages(t *testing.T) {
	got := make(chan []byte, 16)
	ts := startServer(t, abstractEndpoint(t), Options{SocketType: "PUB"}, func(ev Event) {
		got <- append([]byte(nil), ev.Frames[0]...)
	})
	p := rawDial(t, ts.endpoint())
	p.handshake(1, "SUB")
	ts.next(Connected)
	var wire []byte
	wire = appendCommand(wire, "SUBSCRIBE", []byte("news."))
	wire = append(wire, encodeMessage([]byte("\x01weather"))...) // 3.0 form still accepted
	wire = appendCommand(wire, "CANCEL", []byte("news."))
	wire = appendCommand(wire, "SUBSCRIBE", nil) // everything
	if _, err := p.nc.Write(wire); err != nil {
		t.Fatal(err)
	}
	want := [][]byte{[]byte("\x01news."), []byte("\x01weather"), []byte("\x00news."), {1}}
	for i, w := range want {
		select {
		case g := <-got:
			if !bytes.Equal(g, w) {
				t.Fatalf("message %d = %q, want %q", i, g, w)
			}
		case <-time.After(testTimeout):
			t.Fatalf("message %d (%q) not delivered", i, w)
		}
	}
}

// A dialed connection sees the commands as messages from Recv too.
func TestSubscribeCommandDialed(t *testing.T) {
	ts := startServer(t, abstractEndpoint(t), Options{SocketType: "SUB"}, func(ev Event) {})
	c := dialT(t, ts.endpoint(), Options{SocketType: "PUB"})
	ev := ts.next(Connected)
	if ev.Conn.Minor() != 1 {
		t.Skip("peer speaks ZMTP 3.0")
	}
	// The listening SUB sends a SUBSCRIBE command as a 3.1 peer would.
	ev.Conn.enqueue(Outgoing{Frames: [][]byte{[]byte("topic")}, command: "SUBSCRIBE"})
	frames := mustRecv(t, c)
	if len(frames) != 1 || string(frames[0]) != "\x01topic" {
		t.Fatalf("got %s, want [\\x01topic]", describe(frames))
	}
}

// A real libzmq SUB, whatever form it sends, is seen subscribing.
func TestSubscribeFromLibzmq(t *testing.T) {
	py := zmqPython(t)
	got := make(chan []byte, 16)
	ts := startServer(t, abstractEndpoint(t), Options{SocketType: "PUB"}, func(ev Event) {
		got <- append([]byte(nil), ev.Frames[0]...)
	})
	script := `
import sys, time, zmq
s = zmq.Context().socket(zmq.SUB)
s.connect(sys.argv[1])
s.setsockopt(zmq.SUBSCRIBE, b"abc")
time.sleep(0.2)
s.setsockopt(zmq.UNSUBSCRIBE, b"abc")
time.sleep(0.2)
`
	p := startPeer(t, py, "-c", script, ts.endpoint())
	for i, w := range []string{"\x01abc", "\x00abc"} {
		select {
		case g := <-got:
			if string(g) != w {
				t.Fatalf("message %d = %q, want %q", i, g, w)
			}
		case <-time.After(testTimeout):
			t.Fatalf("message %d (%q) not delivered", i, w)
		}
	}
	if err := p.wait(); err != nil {
		t.Fatal(err)
	}
}

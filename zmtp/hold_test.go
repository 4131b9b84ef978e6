package zmtp

import (
	"testing"
	"time"
)

// TestHoldFlush: messages sent between Hold and Flush wait in the queue,
// their writer not woken, and are written, in order, once Flush comes.
func TestHoldFlush(t *testing.T) {
	sock, err := Listen(pathEndpoint(t), Options{SocketType: "ROUTER", Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	// Dialled one at a time, each awaited: the socket's Connected events
	// come in handshake order, not dial order, and conns[i] must be
	// peers[i]'s connection for the Send after Flush below.
	var peers, conns []*Conn
	for len(peers) < 2 {
		peers = append(peers, dialT(t, sock.Endpoint(), Options{}))
		for len(conns) < len(peers) {
			select {
			case b := <-sock.Events():
				for _, ev := range b.Events {
					if ev.Type == Connected {
						conns = append(conns, ev.Conn)
					}
				}
				b.Release()
			case <-time.After(testTimeout):
				t.Fatal("peer not connected")
			}
		}
	}
	sock.Hold()
	for _, c := range conns {
		for _, m := range []string{"one", "two"} {
			if err := c.Send([][]byte{[]byte(m)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Nothing else wakes these writers (no heartbeats, no close).
	time.Sleep(100 * time.Millisecond)
	for i, c := range conns {
		if n := c.Written(); n != 0 {
			t.Fatalf("connection %d wrote %d messages while held", i, n)
		}
	}
	sock.Flush()
	for _, p := range peers {
		for _, want := range []string{"one", "two"} {
			if got := mustRecv(t, p); len(got) != 1 || string(got[0]) != want {
				t.Fatalf("got %s, want %q", describe(got), want)
			}
		}
	}
	// After Flush, sending wakes the writer at once again.
	conns[0].Send([][]byte{[]byte("three")})
	if got := mustRecv(t, peers[0]); string(got[0]) != "three" {
		t.Fatalf("got %s after Flush, want three", describe(got))
	}
}

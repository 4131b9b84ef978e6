package zmtp

import (
	"bytes"
	"testing"
)

// A dialed connection keeps reading replies however much the application
// has queued to send: otherwise a client whose peer is busy reading
// something else stops taking the replies that would unblock it.
func TestDialedConnReadsWithFullSendQueue(t *testing.T) {
	ts := startServer(t, abstractEndpoint(t), Options{}, func(Event) {})
	c := dialT(t, ts.endpoint(), Options{SendQueueMessages: 1, SendQueueBytes: 1024})
	srv := ts.next(Connected).Conn
	srv.Pause() // the server reads nothing more, so our sends pile up
	big := make([]byte, 256<<10)
	for i := 0; i < 32; i++ { // 8 MiB: more than the kernel buffers hold
		if err := c.Send([][]byte{big}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 100; i++ {
		srv.Send([][]byte{[]byte("reply")})
	}
	for i := 0; i < 100; i++ {
		if f := mustRecv(t, c); string(f[0]) != "reply" {
			t.Fatalf("reply %d: %q", i, f)
		}
	}
}

// A peer flooding PINGs without reading gets PONGs, but our queue of them
// stays bounded: PINGs that arrive while a PONG waits share it.
func TestPingFloodBounded(t *testing.T) {
	ts := startServer(t, abstractEndpoint(t), Options{}, nil)
	p := rawDial(t, ts.endpoint())
	p.handshake(1, "DEALER")
	srv := ts.next(Connected).Conn
	ping := appendCommand(nil, "PING", []byte{0, 10, 'c'})
	burst := bytes.Repeat(ping, 10000)
	for i := 0; i < 100; i++ { // a million PINGs, never reading a PONG
		if _, err := p.nc.Write(burst); err != nil {
			t.Fatal(err)
		}
	}
	srv.mu.Lock()
	queued := srv.queuedMsgs
	srv.mu.Unlock()
	if queued > 2 {
		t.Fatalf("%d messages queued for a peer that sent a million PINGs, want at most 2", queued)
	}
}

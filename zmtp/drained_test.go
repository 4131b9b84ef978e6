package zmtp

import (
	"fmt"
	"io"
	"testing"
	"time"
)

// TestEndBehindData: a peer that sends messages and hangs up is seen to
// end once its messages are delivered, however the end comes: in the
// same write as the last messages, just after them, or after a pause in
// which the reader has emptied the socket and waits (on TCP without
// reading again, see drained_linux.go). A missed end would show only at
// testTimeout.
func TestEndBehindData(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ts := startServer(t, tr.endpoint(t), Options{}, func(Event) {})
			want := int64(0)
			for i := 0; i < 30; i++ {
				p := rawDial(t, ts.endpoint())
				p.handshake(1, "DEALER")
				ts.next(Connected)
				one, two := encodeMessage([]byte("one"), []byte("x")), encodeMessage([]byte("two"))
				switch i % 3 {
				case 0: // data and FIN together
					p.nc.Write(append(one, two...))
				case 1: // the reader waits after the first message
					p.nc.Write(one)
					time.Sleep(5 * time.Millisecond)
					p.nc.Write(two)
				case 2: // the FIN alone, after a wait
					p.nc.Write(append(one, two...))
					time.Sleep(5 * time.Millisecond)
				}
				p.nc.Close()
				want += 2
				if ev := ts.nextWithin(Disconnected, 5*time.Second); ev.Err != io.EOF {
					t.Fatalf("round %d: Disconnected with %v, want io.EOF", i, ev.Err)
				}
				if got := ts.msgs.Load(); got != want {
					t.Fatalf("round %d: %d messages before Disconnected, want %d", i, got, want)
				}
			}
		})
	}
}

// TestPauseWhileWaiting: a connection paused while its reader waits for
// the peer's next bytes delivers at most what that wait reads (one
// message here; none on TCP, where the reader checks again) until
// Resume, and then everything, in order. Each message is more than half
// of smallRead, so that one read cannot hold two of them whole however
// the sends coalesce: under load the reader may wake only after several
// have arrived, and delivering all it read is what Pause promises.
func TestPauseWhileWaiting(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			got := make(chan string, 100)
			ts := startServer(t, tr.endpoint(t), Options{}, func(ev Event) {
				if string(ev.Frames[0]) == "pause" {
					ev.Conn.Pause()
				}
				got <- string(ev.Frames[0])
			})
			c := dialT(t, ts.endpoint(), Options{})
			srv := ts.next(Connected).Conn
			c.Send([][]byte{[]byte("pause")})
			if s := <-got; s != "pause" {
				t.Fatalf("got %q, want pause", s)
			}
			const n = 10
			pad := make([]byte, smallRead/2)
			for i := range n {
				time.Sleep(2 * time.Millisecond) // let the reader wait between messages
				c.Send([][]byte{fmt.Appendf(nil, "%d", i), pad})
			}
			// Message 0 may come whenever the wait that read it gets to
			// run; nothing else may come before Resume.
			next := 0
			quiet := time.After(300 * time.Millisecond)
		paused:
			for {
				select {
				case s := <-got:
					if s != "0" || next != 0 {
						t.Fatalf("%q delivered while paused, want at most message 0", s)
					}
					next = 1
				case <-quiet:
					break paused
				}
			}
			srv.Resume()
			for i := next; i < n; i++ {
				select {
				case s := <-got:
					if s != fmt.Sprint(i) {
						t.Fatalf("got %q, want %d", s, i)
					}
				case <-time.After(testTimeout):
					t.Fatalf("message %d not delivered after Resume", i)
				}
			}
		})
	}
}

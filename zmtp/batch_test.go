package zmtp

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// TestBatch: messages that arrive together are delivered in one batch, in
// order, at most as many as the send queue has room for and maxBatch;
// their frames stay intact after the batch is released and reused. (The
// first bytes of a burst are read into a connection's small array, see
// readSmall: a burst larger than that comes in a smaller batch, then
// batches from the read buffer.)
func TestBatch(t *testing.T) {
	for _, tc := range []struct{ sqm, n, largest int }{{0, 10, 10}, {4, 10, 4}, {0, 3 * maxBatch, maxBatch}} {
		t.Run(fmt.Sprintf("queue-%d-messages-%d", tc.sqm, tc.n), func(t *testing.T) {
			sock, next := listenBatches(t, Options{SendQueueMessages: tc.sqm})
			p := rawDial(t, sock.Endpoint())
			p.handshake(1, "DEALER")
			if b := next(); len(b.Events) != 1 || b.Events[0].Type != Connected {
				t.Fatalf("first batch %+v, want one Connected event", b.Events)
			}
			var wire []byte
			for i := range tc.n {
				wire = append(wire, encodeMessage([]byte("m"), fmt.Appendf(nil, "%d", i))...)
			}
			if _, err := p.nc.Write(wire); err != nil {
				t.Fatal(err)
			}
			var got [][][]byte
			largest := 0
			for len(got) < tc.n {
				b := next()
				largest = max(largest, len(b.Events))
				for _, ev := range b.Events {
					if ev.Type != Message {
						t.Fatalf("got a %s event, want messages only", evName(ev.Type))
					}
					got = append(got, ev.Frames)
				}
				b.Release()
			}
			if largest != tc.largest {
				t.Errorf("largest batch %d messages, want %d", largest, tc.largest)
			}
			for i, f := range got {
				if len(f) != 2 || string(f[0]) != "m" || string(f[1]) != fmt.Sprint(i) {
					t.Fatalf("message %d is %s", i, describe(f))
				}
			}
		})
	}
}

// TestUnreleasedBound: a peer that floods while its batches are not
// released gets maxUnreleased batches delivered (about a thousand
// messages), not the whole event buffer; each release lets the reader go
// on, and every message arrives, in order.
func TestUnreleasedBound(t *testing.T) {
	sock, err := Listen(pathEndpoint(t), Options{SocketType: "ROUTER", Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	p := rawDial(t, sock.Endpoint())
	p.handshake(1, "DEALER")
	const n = 4 * maxUnreleased * maxBatch
	var wire []byte
	for i := range n {
		wire = append(wire, encodeMessage(fmt.Appendf(nil, "%d", i))...)
	}
	go p.nc.Write(wire)
	var held []*Batch
	next := 0
	take := func(b *Batch) {
		for _, ev := range b.Events {
			if ev.Type != Message {
				continue
			}
			if string(ev.Frames[0]) != fmt.Sprint(next) {
				t.Fatalf("message %d is %s", next, describe(ev.Frames))
			}
			next++
		}
	}
	for len(held) < maxUnreleased {
		select {
		case b := <-sock.Events():
			take(b)
			held = append(held, b)
		case <-time.After(testTimeout):
			t.Fatalf("%d batches delivered, want %d", len(held), maxUnreleased)
		}
	}
	select {
	case b := <-sock.Events():
		t.Fatalf("batch %d delivered with %d unreleased (%d messages so far)", maxUnreleased+1, maxUnreleased, next+len(b.Events))
	case <-time.After(200 * time.Millisecond):
	}
	for _, b := range held {
		b.Release()
	}
	for next < n {
		select {
		case b := <-sock.Events():
			take(b)
			b.Release()
		case <-time.After(testTimeout):
			t.Fatalf("%d messages of %d after the releases", next, n)
		}
	}
}

// TestReleaseLists: with Options.ReleaseLists, the frame lists of a
// released batch's messages are lent again to later messages, and the
// frames themselves stay intact; without it no list memory is reused
// while the lists are referenced.
func TestReleaseLists(t *testing.T) {
	for _, release := range []bool{true, false} {
		t.Run(fmt.Sprint("release-", release), func(t *testing.T) {
			sock, next := listenBatches(t, Options{ReleaseLists: release})
			p := rawDial(t, sock.Endpoint())
			p.handshake(1, "DEALER")
			next().Release() // Connected
			type kept struct {
				list   *[]byte // where the message's list began
				frames [][]byte
				want   string
			}
			var all []kept
			seen := map[*[]byte]bool{}
			reused := 0
			for round := range 20 {
				var wire []byte
				for i := range 3 {
					wire = append(wire, encodeMessage([]byte("m"), fmt.Appendf(nil, "%d", round), fmt.Appendf(nil, "%d", i))...)
				}
				if _, err := p.nc.Write(wire); err != nil {
					t.Fatal(err)
				}
				for got := 0; got < 3; {
					b := next()
					for _, ev := range b.Events {
						if seen[&ev.Frames[0]] {
							reused++
						}
						seen[&ev.Frames[0]] = true
						all = append(all, kept{&ev.Frames[0], append([][]byte(nil), ev.Frames...), fmt.Sprintf("m|%d|%d", round, got)})
						got++
					}
					b.Release()
				}
			}
			for _, k := range all {
				if got := string(bytes.Join(k.frames, []byte("|"))); got != k.want {
					t.Fatalf("frames %q, want %q: overwritten after release", got, k.want)
				}
			}
			if release && reused == 0 {
				t.Error("no list reused after its batch was released")
			}
			if !release && reused > 0 {
				t.Errorf("%d lists reused without ReleaseLists", reused)
			}
		})
	}
}

// listenBatches listens with a ROUTER socket with opts, and returns it
// and a function that returns its next batch (failing the test if none
// comes in time).
func listenBatches(t *testing.T, opts Options) (*Socket, func() *Batch) {
	t.Helper()
	opts.SocketType, opts.Logger = "ROUTER", quietLogger
	sock, err := Listen(pathEndpoint(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	return sock, func() *Batch {
		t.Helper()
		select {
		case b := <-sock.Events():
			return b
		case <-time.After(testTimeout):
			t.Fatal("no batch delivered")
		}
		return nil
	}
}

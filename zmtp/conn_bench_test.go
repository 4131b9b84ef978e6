package zmtp

import (
	"sync/atomic"
	"testing"
)

// BenchmarkConnStream64 streams 64-byte messages from a dialed connection
// to a listening socket over abstract ipc: the broker's read path under
// load (buffered decoding, many messages per read).
func BenchmarkConnStream64(b *testing.B) {
	var got atomic.Int64
	done := make(chan struct{})
	var want int64
	ts := startServer(b, abstractEndpoint(b), Options{}, func(ev Event) {
		if got.Add(1) == atomic.LoadInt64(&want) {
			close(done)
		}
	})
	c := dialT(b, ts.endpoint(), Options{})
	ts.next(Connected)
	msg := [][]byte{make([]byte, 64)}
	atomic.StoreInt64(&want, int64(b.N))
	b.SetBytes(64)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := c.Send(msg); err != nil {
			b.Fatal(err)
		}
	}
	<-done
}

// BenchmarkConnRoundTrip64 sends a 64-byte message and waits for its
// echo: the read path when each message finds the connection idle.
func BenchmarkConnRoundTrip64(b *testing.B) {
	ts := startServer(b, abstractEndpoint(b), Options{}, nil)
	c := dialT(b, ts.endpoint(), Options{})
	ts.next(Connected)
	msg := [][]byte{make([]byte, 64)}
	b.SetBytes(64)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Send(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Recv(); err != nil {
			b.Fatal(err)
		}
	}
}

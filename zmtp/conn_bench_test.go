package zmtp

import (
	"sync/atomic"
	"testing"
)

// BenchmarkConnStream64 streams 64-byte messages from a dialed connection
// to a listening socket over abstract ipc: the broker's read path under
// load (buffered decoding, many messages per read).
func BenchmarkConnStream64(b *testing.B) { benchStream(b, 64) }

// BenchmarkConnStream1MiB is the same with 1 MiB messages: frames larger
// than the read buffer, read as they arrive.
func BenchmarkConnStream1MiB(b *testing.B) { benchStream(b, 1<<20) }

func benchStream(b *testing.B, size int) {
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
	msg := [][]byte{make([]byte, size)}
	atomic.StoreInt64(&want, int64(b.N))
	b.SetBytes(int64(size))
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

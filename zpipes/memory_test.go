package zpipes

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/zbroker/zbroker/zmtp"
)

// queuedChunkBytes writes n 64-byte chunks into a pipe nobody reads, over
// a real connection, and returns the broker's heap growth per chunk.
func queuedChunkBytes(tb testing.TB, n int) float64 {
	srv, err := Start(Options{Name: "mem-" + time.Now().Format("150405.000000000"), PipeLimit: 1 << 40, TotalLimit: 1 << 40})
	if err != nil {
		tb.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w, err := zmtp.Dial(ctx, srv.Endpoint(), zmtp.Options{SocketType: "DEALER"})
	if err != nil {
		tb.Fatal(err)
	}
	defer w.Close()
	roundTrip := func(msg ...string) {
		w.Send(frames(msg...))
		if f, err := w.Recv(); err != nil || string(f[0]) != ReplyOK {
			tb.Fatalf("%q: %q %v", msg, f, err)
		}
	}
	roundTrip("OPEN", "p")
	before := heapInUse()
	write := [][]byte{[]byte(CmdWrite), []byte("p"), nil}
	const window = 1000
	for sent, acked := 0, 0; acked < n; acked++ {
		for ; sent < n && sent-acked < window; sent++ {
			write[2] = make([]byte, 64)
			w.Send(write)
			write = [][]byte{write[0], write[1], nil}
		}
		if _, err := w.Recv(); err != nil {
			tb.Fatal(err)
		}
	}
	if st := srv.Stats(); st.Chunks != n {
		tb.Fatalf("%d chunks queued, want %d", st.Chunks, n)
	}
	return float64(heapInUse()-before) / float64(n)
}

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// The broker's memory per queued chunk is at most the payload plus 64
// bytes (the cost charged against the limits).
func TestMemoryPerQueuedChunk(t *testing.T) {
	per := queuedChunkBytes(t, 100_000)
	t.Logf("%.1f bytes per queued 64-byte chunk", per)
	if per > 64+chunkOverhead {
		t.Fatalf("%.1f bytes per queued 64-byte chunk, want at most %d", per, 64+chunkOverhead)
	}
}

// BenchmarkQueuedChunkMemory reports heap bytes per queued 64-byte chunk
// with 1,000,000 chunks queued: go test -run '^$' -bench QueuedChunkMemory -benchtime 1x
func BenchmarkQueuedChunkMemory(b *testing.B) {
	for b.Loop() {
		b.ReportMetric(queuedChunkBytes(b, 1_000_000), "B/chunk")
	}
}

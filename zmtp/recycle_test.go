package zmtp

import (
	"bytes"
	"runtime"
	"testing"
)

// A recycled body is what the next frame of its size is read into; bodies
// that are small or share their capacity are not kept.
func TestRecycle(t *testing.T) {
	const n = 300 << 10
	wire := func(seed byte) []byte {
		return append(appendFrameHeader(nil, 0, n), patterned(n, seed)...)
	}
	read := func(w []byte) []byte {
		_, body, err := readFrameInto(reader(w), 1<<30, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
	first := read(wire(1))
	Recycle(first)
	// Some collection may empty the pool in between; a few tries, each
	// recycling what it read, must see the body come back.
	reused := false
	for range 10 {
		second := read(wire(2))
		if !bytes.Equal(second, patterned(n, 2)) {
			t.Fatal("recycled body read wrong")
		}
		if &second[0] == &first[0] {
			reused = true
			break
		}
		first = second
		Recycle(first)
	}
	if !reused {
		t.Error("a recycled body was never reused")
	}
	small := make([]byte, recycleMin-1)
	Recycle(small)
	shared := make([]byte, n, n+1)
	Recycle(shared)
	if b := reuseBody(recycleMin - 1); b != nil {
		t.Error("a body under recycleMin was kept")
	}
	if b := reuseBody(n); b != nil && &b[:1][0] == &shared[0] {
		t.Error("a body whose capacity exceeds its length was kept")
	}
}

// Recycling a body and taking it back allocates nothing: the pool's
// holder of a body taken is kept for the next body recycled.
func TestRecycleAllocs(t *testing.T) {
	const n = 200 << 10
	b := make([]byte, n)
	allocs := testing.AllocsPerRun(100, func() {
		Recycle(b)
		if got := reuseBody(n); got != nil {
			b = got[:n]
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per recycled body, want 0", allocs)
	}
}

// Large one-frame messages a dialed connection has received and dropped
// are garbage: their frame lists do not share a block that keeps them
// all alive while the connection reads on.
func TestLargeMessagesNotRetained(t *testing.T) {
	const n, size = 150, 1 << 20
	ts := startServer(t, abstractEndpoint(t), Options{}, nil)
	c := dialT(t, ts.endpoint(), Options{})
	accepted := ts.next(Connected).Conn
	body := make([]byte, size)
	for range n {
		if err := accepted.Send([][]byte{body}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		msg, err := recvTimeout(t, c, testTimeout)
		if err != nil || len(msg) != 1 || len(msg[0]) != size {
			t.Fatalf("message %d: %d frames, %v", i, len(msg), err)
		}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapInuse > 64<<20 {
		t.Fatalf("%d MiB of heap in use after %d messages of 1 MiB were received and dropped, want under 64 MiB", ms.HeapInuse>>20, n)
	}
	runtime.KeepAlive(c)
}

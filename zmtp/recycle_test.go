package zmtp

import (
	"bytes"
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

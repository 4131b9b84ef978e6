package zpipes

import (
	"bytes"
	"fmt"
	"testing"
)

// Chunks consumed from the memory store give their memory back to the
// transport (zmtp.Recycle), which reads later chunks of the same size into
// it. Every chunk must still arrive intact: memory handed back while a
// reader's socket had not yet taken its chunk would show here as another
// chunk's bytes.
func TestRecycledChunksIntact(t *testing.T) {
	srv := startServer(t, Options{})
	w, r := dialPeer(t, srv), dialPeer(t, srv)
	expect(t, "writer OPEN", w.do("OPEN", "big"), "OK")
	expect(t, "reader OPEN", r.do("OPEN", "big"), "OK")
	sizes := []int{64 << 10, 200 << 10, 1<<20 + 3}
	const n, window = 120, 12
	chunk := func(i int) []byte {
		b := bytes.Repeat([]byte{byte(i)}, sizes[i%len(sizes)])
		copy(b, fmt.Sprintf("chunk %d", i))
		return b
	}
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if err := w.c.Send([][]byte{[]byte("WRITE"), []byte("big"), chunk(i)}); err != nil {
				done <- err
				return
			}
		}
		for i := range n {
			f, err := w.c.Recv()
			if err != nil || len(f) != 1 || string(f[0]) != "OK" {
				done <- fmt.Errorf("WRITE %d: %q %v", i, f, err)
				return
			}
		}
		done <- nil
	}()
	read := [][]byte{[]byte("READ"), []byte("big")}
	for range window {
		r.c.Send(read)
	}
	for i := range n {
		f, err := r.c.Recv()
		if err != nil || len(f) != 1 {
			t.Fatalf("READ %d: %d frames, %v", i, len(f), err)
		}
		if !bytes.Equal(f[0], chunk(i)) {
			t.Fatalf("chunk %d: %d bytes starting %q, want %d bytes starting %q", i, len(f[0]), f[0][:12], sizes[i%len(sizes)], chunk(i)[:12])
		}
		if i+window < n {
			r.c.Send(read)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

package storetest

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/zbroker/zbroker/zmtp"
	"github.com/zbroker/zbroker/zpipes"
)

// RecycledChunksIntact relays large chunks through a broker on store:
// stores hand consumed chunks' memory back to the transport
// (zmtp.Recycle), which reads later chunks of the same size into it. Every
// chunk must still arrive intact: memory handed back while a reader's
// socket, or the store's own log, had not yet taken its chunk would show
// here as another chunk's bytes.
func RecycledChunksIntact(t *testing.T, store zpipes.Store) {
	ep := fmt.Sprintf("ipc://@/zpipes/storetest-recycle-%d", time.Now().UnixNano())
	srv, err := zpipes.Start(zpipes.Options{Endpoint: ep, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	dial := func() *zmtp.Conn {
		c, err := zmtp.Dial(ctx, ep, zmtp.Options{SocketType: "DEALER"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Send([][]byte{[]byte("OPEN"), []byte("big")}); err != nil {
			t.Fatal(err)
		}
		if f, err := c.Recv(); err != nil || len(f) != 1 || string(f[0]) != "OK" {
			t.Fatalf("OPEN: %q %v", f, err)
		}
		return c
	}
	w, r := dial(), dial()
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
			if err := w.Send([][]byte{[]byte("WRITE"), []byte("big"), chunk(i)}); err != nil {
				done <- err
				return
			}
		}
		for i := range n {
			f, err := w.Recv()
			if err != nil || len(f) != 1 || string(f[0]) != "OK" {
				done <- fmt.Errorf("WRITE %d: %q %v", i, f, err)
				return
			}
		}
		done <- nil
	}()
	read := [][]byte{[]byte("READ"), []byte("big")}
	for range window {
		r.Send(read)
	}
	for i := range n {
		f, err := r.Recv()
		if err != nil || len(f) != 1 {
			t.Fatalf("READ %d: %d frames, %v", i, len(f), err)
		}
		if !bytes.Equal(f[0], chunk(i)) {
			t.Fatalf("chunk %d: %d bytes starting %q, want %d bytes starting %q", i, len(f[0]), f[0][:12], sizes[i%len(sizes)], chunk(i)[:12])
		}
		if i+window < n {
			r.Send(read)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

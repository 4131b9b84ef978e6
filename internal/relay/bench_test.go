package relay

import (
	"fmt"
	"testing"

	"github.com/zbroker/zbroker/zmtp"
)

// BenchmarkRelayBare64 is zpipes.BenchmarkRelay64 through the bare relay:
// 64-byte chunks from one writer to one reader, each side keeping a window
// of 1000 commands in flight. One op is one chunk written, acknowledged and
// read. Divide the two ns/op to get zpipes' cost relative to the ceiling.
func BenchmarkRelayBare64(b *testing.B) { benchRelay(b, 64, 1000) }

// BenchmarkRelayBare64K mirrors zpipes.BenchmarkRelay64K.
func BenchmarkRelayBare64K(b *testing.B) { benchRelay(b, 64<<10, 100) }

func benchRelay(b *testing.B, size, window int) {
	r := start(b)
	w, rd := dial(b, r, "DEALER"), dial(b, r, "DEALER")
	pipe := []byte("bench")
	for _, c := range []*zmtp.Conn{w, rd} {
		c.Send([][]byte{[]byte("OPEN"), pipe})
		if f, err := c.Recv(); err != nil || string(f[0]) != "OK" {
			b.Fatal("OPEN failed", f, err)
		}
	}
	chunk := make([]byte, size)
	write := [][]byte{[]byte("WRITE"), pipe, chunk}
	read := [][]byte{[]byte("READ"), pipe}
	n := b.N
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	errs := make(chan error, 4)
	pump := func(c *zmtp.Conn, msg [][]byte, check func([][]byte) bool) {
		sent := 0
		for ; sent < n && sent < window; sent++ {
			c.Send(msg)
		}
		for got := 0; got < n; got++ {
			f, err := c.Recv()
			if err != nil || !check(f) {
				errs <- fmt.Errorf("bad reply %q %v", f, err)
				return
			}
			if sent < n {
				c.Send(msg)
				sent++
			}
		}
		errs <- nil
	}
	go pump(w, write, func(f [][]byte) bool { return len(f) == 1 && string(f[0]) == "OK" })
	go pump(rd, read, func(f [][]byte) bool { return len(f) == 1 && len(f[0]) == size })
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}

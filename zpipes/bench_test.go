package zpipes

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/zbroker/zbroker/zmtp"
)

// BenchmarkRelay64 moves 64-byte chunks from one writer to one reader
// through an in-process broker, each side keeping a window of commands in
// flight. One op is one chunk written, acknowledged and read.
func BenchmarkRelay64(b *testing.B) { benchRelay(b, 64, 1000) }

func BenchmarkRelay64K(b *testing.B) { benchRelay(b, 64<<10, 100) }

func benchRelay(b *testing.B, size, window int) {
	srv, err := Start(Options{Name: fmt.Sprintf("bench-%d", rand.Uint64())})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	dial := func() *zmtp.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := zmtp.Dial(ctx, srv.Endpoint(), zmtp.Options{SocketType: "DEALER"})
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	w, r := dial(), dial()
	defer w.Close()
	defer r.Close()
	pipe := []byte("bench")
	for _, c := range []*zmtp.Conn{w, r} {
		c.Send([][]byte{[]byte(CmdOpen), pipe})
		if f, err := c.Recv(); err != nil || string(f[0]) != ReplyOK {
			b.Fatal("OPEN failed", f, err)
		}
	}
	chunk := make([]byte, size)
	write := [][]byte{[]byte(CmdWrite), pipe, chunk}
	read := [][]byte{[]byte(CmdRead), pipe}
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
	go pump(w, write, func(f [][]byte) bool { return len(f) == 1 && string(f[0]) == ReplyOK })
	go pump(r, read, func(f [][]byte) bool { return len(f) == 1 && len(f[0]) == size })
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}

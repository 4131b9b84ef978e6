package zpipes

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/relay"
	"github.com/zbroker/zbroker/zmtp"
)

// BenchmarkRelay64 moves 64-byte chunks from one writer to one reader
// through an in-process broker, each side keeping a window of commands in
// flight. One op is one chunk written, acknowledged and read.
func BenchmarkRelay64(b *testing.B) { benchRelay(b, startZpipes, 64, 1000, 0) }

// BenchmarkRelay64Ack is BenchmarkRelay64 with an acknowledging reader
// (OPEN / pipe / ACK) that acknowledges every 100 chunks: compare the two
// in one run (-bench 'Relay64(Ack)?$').
func BenchmarkRelay64Ack(b *testing.B) { benchRelay(b, startZpipes, 64, 1000, 100) }

func BenchmarkRelay64K(b *testing.B) { benchRelay(b, startZpipes, 64<<10, 100, 0) }

// BenchmarkRelayBare64 and BenchmarkRelayBare64K run the same load through
// the bare relay (same transport, no pipe logic): divide the ns/op of each
// pair for zpipes' cost relative to that ceiling.
func BenchmarkRelayBare64(b *testing.B) { benchRelay(b, startBare, 64, 1000, 0) }

func BenchmarkRelayBare64K(b *testing.B) { benchRelay(b, startBare, 64<<10, 100, 0) }

func startZpipes(b *testing.B) (string, func()) {
	srv, err := Start(Options{Name: fmt.Sprintf("bench-%d", rand.Uint64())})
	if err != nil {
		b.Fatal(err)
	}
	return srv.Endpoint(), func() { srv.Close() }
}

func startBare(b *testing.B) (string, func()) {
	r, err := relay.Start(fmt.Sprintf("ipc://@/zbroker-bench/bare-%d", rand.Uint64()))
	if err != nil {
		b.Fatal(err)
	}
	return r.Endpoint(), r.Close
}

// benchRelay runs the load; ackEvery > 0 makes the reader acknowledging.
func benchRelay(b *testing.B, start func(*testing.B) (string, func()), size, window, ackEvery int) {
	endpoint, stop := start(b)
	defer stop()
	dial := func() *zmtp.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := zmtp.Dial(ctx, endpoint, zmtp.Options{SocketType: "DEALER"})
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
		open := [][]byte{[]byte(CmdOpen), pipe}
		if c == r && ackEvery > 0 {
			open = append(open, []byte(ArgAck))
		}
		c.Send(open)
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
	// readAcking is the reader's pump when it acknowledges: an ACK after
	// every ackEvery chunks, whose OKs come among the chunks.
	readAcking := func() {
		ack := [][]byte{[]byte(CmdAck), pipe, strconv.AppendInt(nil, int64(ackEvery), 10)}
		sent, acksOut, unacked := 0, 0, 0
		for ; sent < n && sent < window; sent++ {
			r.Send(read)
		}
		for got := 0; got < n; {
			f, err := r.Recv()
			switch {
			case err == nil && acksOut > 0 && len(f) == 1 && string(f[0]) == ReplyOK:
				acksOut--
				continue
			case err != nil || len(f) != 1 || len(f[0]) != size:
				errs <- fmt.Errorf("bad reply %q %v", f, err)
				return
			}
			got++
			if unacked++; unacked == ackEvery {
				r.Send(ack)
				unacked, acksOut = 0, acksOut+1
			}
			if sent < n {
				r.Send(read)
				sent++
			}
		}
		errs <- nil
	}
	go pump(w, write, func(f [][]byte) bool { return len(f) == 1 && string(f[0]) == ReplyOK })
	if ackEvery > 0 {
		go readAcking()
	} else {
		go pump(r, read, func(f [][]byte) bool { return len(f) == 1 && len(f[0]) == size })
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}

package zmtp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// unixPair is a connected pair of unix-domain stream connections.
func unixPair(t *testing.T) (a, b *net.UnixConn) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: "@zmtp-rawio-" + t.Name() + "-" + time.Now().Format("150405.000000000"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, err = net.DialUnix("unix", nil, l.Addr().(*net.UnixAddr))
	if err != nil {
		t.Fatal(err)
	}
	b, err = l.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// A batch written with writev: more buffers than one writev takes, empty
// ones among them, through a send buffer small enough that most writev
// calls are partial and many find it full (EAGAIN), while the peer reads
// slowly. Every byte arrives, in order, and the count says so.
func TestRawWriteBatch(t *testing.T) {
	a, b := unixPair(t)
	a.SetWriteBuffer(4096)
	var bufs net.Buffers
	var want []byte
	for i := range 3000 {
		n := i % 37
		if i%500 == 7 {
			n = 100 << 10
		}
		buf := make([]byte, n)
		for j := range buf {
			buf[j] = byte(i + j)
		}
		bufs = append(bufs, buf)
		want = append(want, buf...)
	}
	got := make(chan []byte, 1)
	go func() {
		var all []byte
		p := make([]byte, 3000)
		for {
			n, err := b.Read(p)
			all = append(all, p[:n]...)
			if err != nil {
				got <- all
				return
			}
			if len(all)%7 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	var w batchWriter
	n, err := w.writeTo(a, &bufs)
	if err != nil || n != int64(len(want)) {
		t.Fatalf("writeTo: %d bytes, %v; want %d, nil", n, err, len(want))
	}
	a.Close()
	if all := <-got; !bytes.Equal(all, want) {
		t.Fatalf("peer read %d bytes, not the %d written in order", len(all), len(want))
	}
	if cap(w.raw.iov) == 0 || w.raw.rc == nil {
		t.Fatal("writeTo did not take the raw writev path")
	}
	for _, v := range w.raw.iov[:cap(w.raw.iov)] {
		if v.Base != nil {
			t.Fatal("writeTo kept a reference to a written buffer")
		}
	}
}

// A writev stopped by the write deadline (the linger of Close) reports
// the bytes that did go out, which the writer uses to tell which
// messages were written in full.
func TestRawWriteDeadline(t *testing.T) {
	a, b := unixPair(t)
	bufs := net.Buffers{make([]byte, 8<<20), []byte("tail")}
	a.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	var w batchWriter
	n, err := w.writeTo(a, &bufs)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n <= 0 || n >= 8<<20 {
		t.Fatalf("writeTo to a peer that does not read: %d bytes, %v; want some, and the deadline", n, err)
	}
	a.Close()
	all, _ := io.ReadAll(b)
	if int64(len(all)) != n {
		t.Fatalf("peer read %d bytes, writeTo reported %d", len(all), n)
	}
}

// A peer that has gone makes writeTo fail with the system's error.
func TestRawWritePeerGone(t *testing.T) {
	a, b := unixPair(t)
	b.Close()
	bufs := net.Buffers{make([]byte, 1<<20)}
	var w batchWriter
	if _, err := w.writeTo(a, &bufs); !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("writeTo to a closed peer: %v, want EPIPE or ECONNRESET", err)
	}
}

// bodyReader gives what the handshake read ahead first, then reads the
// socket, waiting for bytes that come late, until the peer's end (EOF);
// a read deadline ends a wait.
func TestBodyReader(t *testing.T) {
	a, b := unixPair(t)
	rs := readState{src: connSource{nc: b, pending: []byte("ahead")}}
	rc, err := b.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rs.rc = rc
	rs.bodyFn = rs.readBodyFn
	src := rs.source()
	if _, ok := src.(*bodyReader); !ok {
		t.Fatalf("source is a %T, want *bodyReader", src)
	}
	go func() {
		for _, s := range []string{"late", "r bytes", "and more"} {
			time.Sleep(10 * time.Millisecond)
			a.Write([]byte(s))
		}
		a.Close()
	}()
	all, err := io.ReadAll(src)
	if err != nil || string(all) != "aheadlater bytesand more" {
		t.Fatalf("read %q, %v", all, err)
	}
	b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := src.Read(make([]byte, 10)); err != io.EOF {
		t.Fatalf("read after the end: %v, want EOF", err)
	}

	_, d := unixPair(t)
	rs = readState{src: connSource{nc: d}}
	if rs.rc, err = d.SyscallConn(); err != nil {
		t.Fatal(err)
	}
	rs.bodyFn = rs.readBodyFn
	d.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := rs.source().Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read with nothing sent: %v, want the deadline", err)
	}
}

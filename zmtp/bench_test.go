package zmtp

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"
)

// encodedWrite is a zpipes WRITE of a 64-byte chunk as it is on the wire.
func encodedWrite() []byte {
	var b []byte
	b = appendFrameHeader(b, flagMore, 5)
	b = append(b, "WRITE"...)
	b = appendFrameHeader(b, flagMore, 4)
	b = append(b, "pipe"...)
	b = appendFrameHeader(b, 0, 64)
	return append(b, make([]byte, 64)...)
}

// BenchmarkDecode64 decodes a three-frame message with a 64-byte chunk
// from a full read buffer, the broker's common case.
func BenchmarkDecode64(b *testing.B) {
	msg := encodedWrite()
	stream := bytes.Repeat(msg, 1000)
	src := bytes.NewReader(stream)
	r := bufio.NewReaderSize(src, 64<<10)
	var block frameBlock
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if r.Buffered() < len(msg) {
			src.Reset(stream)
			r.Reset(src)
			r.Peek(1)
		}
		if _, ok := readBuffered(r, 1<<20, 1024, &block); !ok {
			b.Fatal("not decoded")
		}
	}
}

// BenchmarkEncode64 encodes batches of 100 one-frame 64-byte replies into
// one vectored write.
func BenchmarkEncode64(b *testing.B) {
	var w batchWriter
	batch := make([]Outgoing, 100)
	for i := range batch {
		batch[i] = Outgoing{Frames: [][]byte{make([]byte, 64)}}
	}
	nc := discardConn{}
	b.SetBytes(100 * 66)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.write(nc, batch, nil); err != nil {
			b.Fatal(err)
		}
	}
}

type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error) { return io.Discard.Write(p) }

// BenchmarkEncodeCurve64 is BenchmarkEncode64 under CURVE: each frame is
// boxed in a MESSAGE, with no allocation once the scratch has grown.
func BenchmarkEncodeCurve64(b *testing.B) {
	var w batchWriter
	batch := make([]Outgoing, 100)
	for i := range batch {
		batch[i] = Outgoing{Frames: [][]byte{make([]byte, 64)}}
	}
	var shared [32]byte
	s := newCurveSealer(&shared, true, 1)
	nc := discardConn{}
	b.SetBytes(100 * 66)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.write(nc, batch, s); err != nil {
			b.Fatal(err)
		}
	}
}

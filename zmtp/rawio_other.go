//go:build !linux

package zmtp

import (
	"io"
	"net"
)

// source is what a body is read from straight into place (readBody).
func (rs *readState) source() io.Reader { return &rs.src }

func (rs *readState) readBodyFn(uintptr) bool { return true }

type rawWriter struct{}

func (w *batchWriter) writeTo(nc net.Conn, bufs *net.Buffers) (int64, error) {
	return bufs.WriteTo(nc)
}

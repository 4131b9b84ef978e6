package zmtp

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// The socket reads and writes of the data path use RawSyscall, not
// Syscall. The socket is non-blocking, so such a call never waits: it
// copies, and returns. But a copy of 64 KiB or more takes 10-300 µs, and
// the runtime treats a Syscall that lasts that long as blocked: its
// monitor (sysmon) takes the P away, hands it to another thread, and
// polls every 20 µs while it keeps finding such calls; the thread coming
// back from the call then has no P and parks. At 64 KiB chunks the
// monitor alone used about 7% of a core (4k wake-ups a second) in the
// broker (issue 14). A RawSyscall keeps its P, as any running goroutine
// does; the price is that the P's other goroutines wait for the copy (or
// are stolen by an idle P), which is what the copy costs anyway.

// source is what a body is read from straight into place (readBody).
func (rs *readState) source() io.Reader { return (*bodyReader)(rs) }

// bodyReader reads from the socket with rawRead, after what the
// handshake read ahead.
type bodyReader readState

func (b *bodyReader) Read(p []byte) (int, error) {
	rs := (*readState)(b)
	if len(rs.src.pending) > 0 || rs.rc == nil || len(p) == 0 {
		return rs.src.Read(p)
	}
	rs.body, rs.bodyN, rs.bodyErr = p, 0, 0
	err := rs.rc.Read(rs.bodyFn)
	rs.body = nil
	switch {
	case err != nil:
		return 0, err
	case rs.bodyErr != 0:
		return 0, os.NewSyscallError("read", rs.bodyErr)
	case rs.bodyN == 0:
		return 0, io.EOF
	}
	return rs.bodyN, nil
}

// readBodyFn is the function bodyReader gives RawConn.Read.
func (rs *readState) readBodyFn(fd uintptr) bool {
	n, errno := rawRead(fd, rs.body)
	if errno == syscall.EAGAIN {
		return false
	}
	rs.bodyN, rs.bodyErr = n, errno
	return true
}

// rawRead reads into p (not empty), retrying on EINTR.
func rawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if errno != syscall.EINTR {
			return int(n), errno
		}
	}
}

// maxIovecs is what Linux takes in one writev (IOV_MAX).
const maxIovecs = 1024

// rawWriter writes a batch's buffers with writev through RawConn.Write.
type rawWriter struct {
	rc      syscall.RawConn
	fn      func(uintptr) bool // writeFn, bound once
	bufs    *net.Buffers       // what is left to write, consumed as written
	iov     []syscall.Iovec
	written int64
	errno   syscall.Errno
}

// writeTo writes all of *bufs to nc, as bufs.WriteTo(nc) would, and
// returns how many bytes it wrote.
func (w *batchWriter) writeTo(nc net.Conn, bufs *net.Buffers) (int64, error) {
	r := &w.raw
	if r.fn == nil {
		if sc, ok := nc.(syscall.Conn); ok {
			r.rc, _ = sc.SyscallConn()
		}
		r.fn = r.writeFn
	}
	if r.rc == nil {
		return bufs.WriteTo(nc)
	}
	r.bufs, r.written, r.errno = bufs, 0, 0
	err := r.rc.Write(r.fn)
	clear(r.iov[:cap(r.iov)]) // drop references to the payloads
	r.bufs = nil
	if err == nil && r.errno != 0 {
		err = os.NewSyscallError("writev", r.errno)
	}
	return r.written, err
}

func (r *rawWriter) writeFn(fd uintptr) bool {
	for {
		iov := r.iov[:0]
		for _, b := range *r.bufs {
			if len(b) == 0 {
				continue
			}
			if len(iov) == maxIovecs {
				break
			}
			iov = append(iov, syscall.Iovec{Base: &b[0]})
			iov[len(iov)-1].SetLen(len(b))
		}
		r.iov = iov
		if len(iov) == 0 {
			return true
		}
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		switch errno {
		case 0:
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			r.errno = errno
			return true
		}
		r.written += int64(n)
		consume(r.bufs, int64(n))
	}
}

// consume drops the first n bytes of *v.
func consume(v *net.Buffers, n int64) {
	for len(*v) > 0 {
		ln0 := int64(len((*v)[0]))
		if ln0 > n {
			(*v)[0] = (*v)[0][n:]
			return
		}
		n -= ln0
		(*v)[0] = nil
		*v = (*v)[1:]
	}
}

package zmtp

import (
	"io"
	"syscall"
	"unsafe"
)

// readSmall waits, holding no read buffer, until the peer sends something
// (honouring the socket's read deadline), and reads the first bytes into
// the connection's small array: a whole small message usually, so waiting
// this way costs no syscall more than a plain read. The bytes are left
// in src.pending for the read buffer taken next.
func (c *Conn) readSmall() error {
	rs := &c.rs
	if rs.rc == nil {
		return nil
	}
	rs.waitFirst, rs.inPlace = false, inPlaceNo
	if err := rs.rc.Read(rs.readFn); err != nil {
		return err
	}
	switch rs.inPlace {
	case inPlaceDelivered:
		return errDelivered
	case inPlaceClosed:
		return ErrClosed
	}
	if rs.smallErr != 0 {
		return rs.smallErr
	}
	if rs.smallN == 0 {
		return io.EOF
	}
	rs.src.pending = rs.small[:rs.smallN]
	return nil
}

// readInto is the function given to RawConn.Read: false asks it to wait
// until the socket is readable. On TCP it may deliver what it read itself
// and wait again, staying in one RawConn.Read (see deliverInPlace).
func (rs *readState) readInto(fd uintptr) bool {
	for {
		if rs.waitFirst {
			rs.waitFirst = false
			return false
		}
		var n uintptr
		var errno syscall.Errno
		left := -1
		if rs.inqOn {
			n, left, errno = recvINQ(fd, rs.small[:])
		} else {
			n, _, errno = syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&rs.small[0])), uintptr(len(rs.small)))
		}
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		rs.smallN, rs.smallErr = int(n), errno
		if errno != 0 || n == 0 || left != 0 {
			return true
		}
		if rs.inPlace = rs.conn.deliverInPlace(); rs.inPlace != inPlaceWait {
			return true
		}
		rs.waitFirst = true
	}
}

// queued says how many bytes wait in the socket's receive queue (SIOCINQ):
// bytes of a frame that have arrived though we have not read them.
func (rs *readState) queued() int {
	if rs.rc == nil {
		return 0
	}
	rs.inqN = 0
	rs.rc.Control(rs.inqFn)
	return rs.inqN
}

func (rs *readState) inq(fd uintptr) {
	var n int32
	if _, _, errno := syscall.RawSyscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n))); errno == 0 && n > 0 {
		rs.inqN = int(n)
	}
}

//go:build linux && !386

package zmtp

import (
	"net"
	"syscall"
	"unsafe"
)

// tcpINQ is TCP_INQ, and TCP_CM_INQ, the control message it adds.
const tcpINQ = 36

// useINQ turns TCP_INQ on for a TCP connection.
func (rs *readState) useINQ(nc net.Conn) {
	if _, ok := nc.(*net.TCPConn); !ok || rs.rc == nil {
		return
	}
	rs.rc.Control(func(fd uintptr) {
		rs.inqOn = syscall.SetsockoptInt(int(fd), syscall.SOL_TCP, tcpINQ, 1) == nil
	})
}

// recvINQ reads into p and reports how many bytes are left in the socket
// (1 if only a FIN is; -1 if unknown).
func recvINQ(fd uintptr, p []byte) (n uintptr, left int, errno syscall.Errno) {
	var oob [4]uint64 // room for one control message, aligned for its header
	iov := syscall.Iovec{Base: &p[0]}
	iov.SetLen(len(p))
	msg := syscall.Msghdr{Iov: &iov, Iovlen: 1, Control: (*byte)(unsafe.Pointer(&oob))}
	msg.SetControllen(int(unsafe.Sizeof(oob)))
	n, _, errno = syscall.RawSyscall(syscall.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&msg)), 0)
	left = -1
	if errno == 0 && int(msg.Controllen) >= syscall.CmsgLen(4) {
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&oob))
		if h.Level == syscall.SOL_TCP && h.Type == tcpINQ {
			left = int(*(*int32)(unsafe.Add(unsafe.Pointer(&oob), syscall.CmsgLen(0))))
		}
	}
	return n, left, errno
}

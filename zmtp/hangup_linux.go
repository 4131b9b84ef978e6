package zmtp

import (
	"net"
	"syscall"
	"unsafe"
)

// peerHungUp asks the kernel, without reading, whether the peer has closed
// its end. POLLRDHUP reports it even when unread data is queued before
// the end, which a zero-byte MSG_PEEK cannot see: a paused peer that sent
// more and then died must still be noticed.
func peerHungUp(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	const pollRDHUP = 0x2000 // POLLRDHUP, Linux-specific
	const pollIn, pollErr, pollHup = 0x1, 0x8, 0x10
	hungUp := false
	rc.Control(func(fd uintptr) {
		pfd := struct {
			fd      int32
			events  int16
			revents int16
		}{fd: int32(fd), events: pollIn | pollRDHUP}
		var ts syscall.Timespec // zero: do not wait
		n, _, errno := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		hungUp = errno == 0 && n == 1 && pfd.revents&(pollRDHUP|pollErr|pollHup) != 0
	})
	return hungUp
}

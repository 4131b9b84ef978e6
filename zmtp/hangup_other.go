//go:build !linux

package zmtp

import (
	"errors"
	"net"
	"syscall"
)

// peerHungUp peeks at the socket without consuming anything: a zero-byte
// read means the peer has closed its end. Unlike the Linux version it
// cannot see a hang-up behind unread data.
func peerHungUp(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	hungUp := false
	var b [1]byte
	rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		hungUp = (n == 0 && err == nil) || errors.Is(err, syscall.ECONNRESET)
		return true
	})
	return hungUp
}

//go:build !linux || 386

package zmtp

import (
	"net"
	"syscall"
)

// TCP_INQ is used on Linux only (and not on 386, whose recvmsg goes
// through socketcall): readers there read until the socket is empty.

func (rs *readState) useINQ(net.Conn) {}

func recvINQ(uintptr, []byte) (uintptr, int, syscall.Errno) { return 0, -1, syscall.ENOSYS }

package zmtp

import "net"

// ipcSendBuffer is the send buffer asked for on unix-domain (ipc://)
// connections; Linux doubles it, and caps the request at
// net.core.wmem_max. Its default (212992 bytes) holds a fifth of a 1 MiB
// message, so writing one took about ten writev calls, half of them
// refused with EAGAIN, each a park and wake-up of the writer, and as many
// of the peer's reader (issue 14: at 1 MiB, window 10, the broker's CPU
// per chunk fell by a quarter with it). The kernel holds no more than
// what is in flight to a peer that does not read, on top of the send
// queue's bound. TCP is left alone: setting a buffer there turns off the
// kernel's autotuning, which goes further on its own.
const ipcSendBuffer = 1 << 20

// tuneConn sets what a new connection's socket needs beyond the system's
// defaults. Best effort: a refused setting leaves the default.
func tuneConn(nc net.Conn) {
	if uc, ok := nc.(*net.UnixConn); ok {
		uc.SetWriteBuffer(ipcSendBuffer)
	}
}

package zmtp

import "net"

// ipcSendBuffer is the send buffer asked for on a unix-domain (ipc://)
// connection once it writes a bigFrame; Linux doubles it, and caps the
// request at net.core.wmem_max. Its default (212992 bytes) holds a fifth
// of a 1 MiB message, so writing one took about ten writev calls, half
// of them refused with EAGAIN, each a park and wake-up of the writer, and
// as many of the peer's reader (issue 14: at 1 MiB, window 10, the
// broker's CPU per chunk fell by an eighth to a quarter with it). Only
// connections that carry large frames get it, so that what the kernel
// may hold for a peer that does not read (on top of the send queue's
// bound) stays the default for all others: at 4 KiB and 64 KiB chunks the
// larger buffer measured no gain. TCP is left alone: setting a buffer
// there turns off the kernel's autotuning, which goes further on its own.
const ipcSendBuffer = 1 << 20

// bigFrame is the least frame that makes its connection's writer ask for
// ipcSendBuffer: more than half the default buffer in one frame.
const bigFrame = 128 << 10

// growSendBuffer asks for ipcSendBuffer on a unix-domain connection.
// Best effort: a refused setting leaves the default.
func growSendBuffer(nc net.Conn) {
	if uc, ok := nc.(*net.UnixConn); ok {
		uc.SetWriteBuffer(ipcSendBuffer)
	}
}

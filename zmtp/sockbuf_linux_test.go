package zmtp

import (
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Both ends of an ipc connection get the larger send buffer: what Linux
// makes of the request (twice it, the request capped at
// net.core.wmem_max), not the system default.
func TestIPCSendBuffer(t *testing.T) {
	want := 2 * ipcSendBuffer
	if b, err := os.ReadFile("/proc/sys/net/core/wmem_max"); err == nil {
		if limit, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			want = 2 * min(ipcSendBuffer, limit)
		}
	}
	ts := startServer(t, abstractEndpoint(t), Options{}, nil)
	c := dialT(t, ts.endpoint(), Options{})
	accepted := ts.next(Connected).Conn
	for name, nc := range map[string]net.Conn{"accepted": accepted.nc, "dialed": c.nc} {
		rc, err := nc.(*net.UnixConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var got int
		var serr error
		rc.Control(func(fd uintptr) { got, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF) })
		if serr != nil || got != want {
			t.Errorf("%s connection: SO_SNDBUF %d (%v), want %d", name, got, serr, want)
		}
	}
}

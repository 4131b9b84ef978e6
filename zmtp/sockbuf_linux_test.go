package zmtp

import (
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// An ipc connection keeps the system's send buffer until it writes a
// bigFrame, then has the larger one: what Linux makes of the request
// (twice it, the request capped at net.core.wmem_max). Checked on both
// ends: the dialed one sends the large message, the accepted one echoes
// it.
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
	sndbuf := func(nc net.Conn) int {
		rc, err := nc.(*net.UnixConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var n int
		var serr error
		rc.Control(func(fd uintptr) { n, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF) })
		if serr != nil {
			t.Fatal(serr)
		}
		return n
	}
	ends := map[string]net.Conn{"accepted": accepted.nc, "dialed": c.nc}
	before := map[string]int{}
	for name, nc := range ends {
		before[name] = sndbuf(nc)
	}
	echoOf := func(size int) {
		t.Helper()
		if err := c.Send([][]byte{make([]byte, size)}); err != nil {
			t.Fatal(err)
		}
		if msg, err := recvTimeout(t, c, testTimeout); err != nil || len(msg) != 1 || len(msg[0]) != size {
			t.Fatalf("echo of %d bytes: %v", size, err)
		}
	}
	echoOf(bigFrame - 1)
	for name, nc := range ends {
		if got := sndbuf(nc); got != before[name] {
			t.Errorf("%s connection after a frame under bigFrame: SO_SNDBUF %d, want the default %d", name, got, before[name])
		}
	}
	echoOf(bigFrame)
	for name, nc := range ends {
		if got := sndbuf(nc); got != want {
			t.Errorf("%s connection after a bigFrame: SO_SNDBUF %d, want %d", name, got, want)
		}
	}
}

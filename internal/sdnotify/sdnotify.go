// Package sdnotify tells a service manager (systemd's Type=notify) about
// the daemon's state: one datagram to the unix socket named by
// NOTIFY_SOCKET, as sd_notify(3) does, without a dependency.
package sdnotify

import (
	"net"
	"os"
)

// States sent by zbroker.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
)

// Notify sends state to $NOTIFY_SOCKET. It returns false, nil when the
// variable is unset (not started by a service manager). An address
// starting with @ is in the abstract namespace.
func Notify(state string) (bool, error) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return false, nil
	}
	if addr[0] == '@' {
		addr = "\x00" + addr[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return false, err
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return false, err
	}
	return true, nil
}

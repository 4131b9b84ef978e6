package zmtp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
)

// ErrAddrInUse is returned by Listen when another process already serves
// the endpoint.
var ErrAddrInUse = errors.New("address already in use")

// splitEndpoint maps a ZeroMQ endpoint to a Go network and address.
// "ipc://@name" is the Linux abstract namespace, exactly as in libzmq; Go's
// unix sockets use the same '@' convention. "tcp://*:port" binds all
// interfaces.
func splitEndpoint(endpoint string) (network, addr string, err error) {
	scheme, rest, ok := strings.Cut(endpoint, "://")
	if !ok || rest == "" {
		return "", "", fmt.Errorf("zmtp: bad endpoint %q (want ipc://PATH, ipc://@NAME or tcp://HOST:PORT)", endpoint)
	}
	switch scheme {
	case "ipc":
		return "unix", rest, nil
	case "tcp":
		if strings.HasPrefix(rest, "*:") {
			rest = rest[1:]
		}
		return "tcp", rest, nil
	}
	return "", "", fmt.Errorf("zmtp: unsupported transport %q in %q (want ipc or tcp)", scheme, endpoint)
}

// listen binds an endpoint. A filesystem ipc path left over by a dead
// process is replaced, as libzmq does, but one that still answers is not
// stolen: two brokers must never share an endpoint.
func listen(endpoint string) (net.Listener, error) {
	network, addr, err := splitEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	if network == "unix" && !strings.HasPrefix(addr, "@") {
		if c, err := net.Dial("unix", addr); err == nil {
			c.Close()
			return nil, fmt.Errorf("zmtp: bind %s: %w", endpoint, ErrAddrInUse)
		}
		if fi, err := os.Lstat(addr); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(addr)
		}
	}
	l, err := net.Listen(network, addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("zmtp: bind %s: %w", endpoint, ErrAddrInUse)
	}
	if err != nil {
		return nil, fmt.Errorf("zmtp: bind %s: %w", endpoint, err)
	}
	if ul, ok := l.(*net.UnixListener); ok {
		// We replace stale files ourselves; Go removing the file on Close
		// is still what we want for a clean shutdown.
		ul.SetUnlinkOnClose(true)
	}
	return l, nil
}

func dial(ctx context.Context, endpoint string) (net.Conn, error) {
	network, addr, err := splitEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// endpointOf renders a listener's bound address back as an endpoint, so
// "tcp://127.0.0.1:0" reports the port actually chosen.
func endpointOf(l net.Listener) string {
	a := l.Addr()
	if a.Network() == "unix" {
		return "ipc://" + a.String()
	}
	return "tcp://" + a.String()
}

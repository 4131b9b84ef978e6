package zmtp

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSplitEndpoint(t *testing.T) {
	ok := []struct{ endpoint, network, addr string }{
		{"ipc://@/zbroker/x", "unix", "@/zbroker/x"},
		{"ipc:///tmp/a.sock", "unix", "/tmp/a.sock"},
		{"ipc://rel.sock", "unix", "rel.sock"},
		{"tcp://127.0.0.1:5555", "tcp", "127.0.0.1:5555"},
		{"tcp://*:5555", "tcp", ":5555"},
		{"tcp://[::1]:5555", "tcp", "[::1]:5555"},
	}
	for _, c := range ok {
		network, addr, err := splitEndpoint(c.endpoint)
		if err != nil || network != c.network || addr != c.addr {
			t.Errorf("splitEndpoint(%q) = %q, %q, %v; want %q, %q", c.endpoint, network, addr, err, c.network, c.addr)
		}
	}
	for _, bad := range []string{"", "foo", "ipc://", "tcp://", "inproc://x", "pgm://x:1", "ipc:/x"} {
		if _, _, err := splitEndpoint(bad); err == nil {
			t.Errorf("splitEndpoint(%q) accepted", bad)
		}
	}
}

func TestListenTCPEndpoint(t *testing.T) {
	ts := startServer(t, "tcp://127.0.0.1:0", Options{}, nil)
	if ep := ts.endpoint(); !strings.HasPrefix(ep, "tcp://127.0.0.1:") || strings.HasSuffix(ep, ":0") {
		t.Fatalf("Endpoint() = %q, want the real port", ep)
	}
	_, err := Listen(ts.endpoint(), Options{SocketType: "ROUTER"})
	if !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("second Listen on %s: got %v, want ErrAddrInUse", ts.endpoint(), err)
	}
	assertServes(t, ts)
}

func assertServes(t *testing.T, ts *testServer) {
	t.Helper()
	c := dialT(t, ts.endpoint(), Options{})
	c.Send([][]byte{[]byte("ping")})
	if got := mustRecv(t, c); string(got[0]) != "ping" {
		t.Fatalf("got %q", got[0])
	}
	c.Close()
}

// TestListenAbstractInUse: a bound abstract endpoint cannot be bound again,
// and the first owner keeps serving.
func TestListenAbstractInUse(t *testing.T) {
	ep := abstractEndpoint(t)
	ts := startServer(t, ep, Options{}, nil)
	if ts.endpoint() != ep {
		t.Fatalf("Endpoint() = %q, want %q", ts.endpoint(), ep)
	}
	_, err := Listen(ep, Options{SocketType: "ROUTER"})
	if !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("second Listen: got %v, want ErrAddrInUse", err)
	}
	assertServes(t, ts)
}

// TestListenPathInUse: a live ipc path is not stolen: the second Listen
// fails with ErrAddrInUse and the first keeps its file and its peers.
func TestListenPathInUse(t *testing.T) {
	ep := pathEndpoint(t)
	path := strings.TrimPrefix(ep, "ipc://")
	ts := startServer(t, ep, Options{}, nil)
	_, err := Listen(ep, Options{SocketType: "ROUTER"})
	if !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("second Listen: got %v, want ErrAddrInUse", err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket file gone after a refused Listen: %v", err)
	}
	assertServes(t, ts)
	ts.close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("socket file left after Close: %v", err)
	}
}

// TestListenStalePath: a socket file left by a dead process (nobody
// accepts on it) is replaced; a file that is not a socket is not touched.
func TestListenStalePath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false) // as if the process was killed
	l.Close()
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("no stale socket file to test with: %v", err)
	}
	ts := startServer(t, "ipc://"+path, Options{}, nil)
	assertServes(t, ts)

	regular := filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen("ipc://"+regular, Options{SocketType: "ROUTER"}); err == nil {
		t.Fatal("Listen over a regular file succeeded")
	}
	if b, err := os.ReadFile(regular); err != nil || string(b) != "precious" {
		t.Fatalf("regular file damaged: %q %v", b, err)
	}
}

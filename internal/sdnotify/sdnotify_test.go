package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func receive(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotifyPathAndAbstract(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	abstract := "@zbroker-sdnotify-test-" + filepath.Base(t.TempDir())
	for _, tc := range []struct{ env, listen string }{
		{path, path},
		{abstract, "\x00" + abstract[1:]},
	} {
		c := listen(t, tc.listen)
		t.Setenv("NOTIFY_SOCKET", tc.env)
		sent, err := Notify(Ready)
		if err != nil || !sent {
			t.Fatalf("NOTIFY_SOCKET=%q: sent %v, err %v", tc.env, sent, err)
		}
		if got := receive(t, c); got != Ready {
			t.Fatalf("NOTIFY_SOCKET=%q: got %q, want %q", tc.env, got, Ready)
		}
	}
}

func TestNotifyUnsetAndMissing(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := Notify(Ready); sent || err != nil {
		t.Fatalf("unset: sent %v, err %v; want false, nil", sent, err)
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody"))
	if sent, err := Notify(Ready); sent || err == nil {
		t.Fatalf("no listener: sent %v, err %v; want false and an error", sent, err)
	}
}

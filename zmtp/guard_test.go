package zmtp

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/testuser"
)

// Accepted and dialed connections know who is at the other end: uid and
// pid on ipc (for access checks and audit logs), the address on tcp.
func TestPeerIdentity(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ts := startServer(t, tr.endpoint(t), Options{}, nil)
			c := dialT(t, ts.endpoint(), Options{})
			ev := ts.next(Connected)
			srv, cli := ev.Conn.Peer(), c.Peer()
			if tr.name == "tcp" {
				if srv.Addr == "" || srv.UID != -1 || cli.Addr == "" {
					t.Fatalf("tcp peers: server sees %+v, client sees %+v", srv, cli)
				}
				return
			}
			want := Peer{UID: os.Geteuid(), GID: os.Getegid(), PID: os.Getpid()}
			if srv != want || cli != want {
				t.Fatalf("ipc peers: server sees %+v, client sees %+v, want %+v", srv, cli, want)
			}
		})
	}
}

// The access rules: our uid and root always, then named uids, a named
// primary gid, or a named supplementary group read from /proc.
func TestGuardAllowed(t *testing.T) {
	const stranger = 987654
	self := os.Getpid()
	cases := []struct {
		name string
		acc  Access
		peer Peer
		want bool
	}{
		{"own uid", Access{}, Peer{UID: os.Geteuid(), GID: stranger, PID: self}, true},
		{"root", Access{}, Peer{UID: 0, GID: stranger, PID: self}, true},
		{"stranger", Access{}, Peer{UID: stranger, GID: stranger, PID: self}, false},
		{"named uid", Access{AllowUIDs: []int{stranger}}, Peer{UID: stranger, GID: stranger, PID: self}, true},
		{"other uid named", Access{AllowUIDs: []int{stranger + 1}}, Peer{UID: stranger, GID: stranger, PID: self}, false},
		{"primary gid", Access{AllowGIDs: []int{stranger}}, Peer{UID: stranger, GID: stranger, PID: self}, true},
		{"gid not held", Access{AllowGIDs: []int{stranger + 1}}, Peer{UID: stranger, GID: stranger, PID: self}, false},
		{"no pid for groups", Access{AllowGIDs: []int{stranger + 1}}, Peer{UID: stranger, GID: stranger, PID: 0}, false},
	}
	for _, c := range cases {
		g := NewGuard(GuardConfig{Access: c.acc, Logger: quietLogger})
		if got := g.allowed(c.peer); got != c.want {
			t.Errorf("%s: allowed(%+v) = %v, want %v", c.name, c.peer, got, c.want)
		}
	}
}

// MaxConnections and MaxConnectionsPerUID close the excess peers at once,
// count handshaking peers too, and free their slot when they leave.
func TestMaxConnections(t *testing.T) {
	for _, perUID := range []bool{false, true} {
		cfg := GuardConfig{MaxConnections: 2, Logger: quietLogger}
		if perUID {
			cfg = GuardConfig{MaxConnectionsPerUID: 2, Logger: quietLogger}
		}
		var logs lockedBuffer
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		ts := startServer(t, abstractEndpoint(t), Options{Guard: NewGuard(cfg)}, nil)
		a := rawDial(t, ts.endpoint())
		a.handshake(1, "DEALER")
		ts.next(Connected)
		b := rawDial(t, ts.endpoint()) // still in its handshake
		c := rawDial(t, ts.endpoint())
		if _, err := c.br.ReadByte(); err == nil {
			t.Fatalf("perUID=%v: third connection was served", perUID)
		}
		b.handshake(1, "DEALER")
		ts.next(Connected)
		a.nc.Close()
		ts.next(Disconnected)
		d := rawDial(t, ts.endpoint())
		d.handshake(1, "DEALER")
		ts.next(Connected)
		if !strings.Contains(logs.String(), "too many connections") {
			t.Errorf("perUID=%v: refusal not logged: %s", perUID, logs.String())
		}
	}
}

// pyDealer connects a DEALER to argv[1], sends "hello" and prints the
// reply, or "noreply" after argv[2] milliseconds.
const pyDealer = `
import sys, zmq
ctx = zmq.Context()
s = ctx.socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 0)
s.connect(sys.argv[1])
s.send(b"hello")
print("reply " + s.recv().decode() if s.poll(int(sys.argv[2])) else "noreply")
`

// Another local uid is refused before its greeting (and each of libzmq's
// reconnects too, logged once), while the owner is served; named uids and
// gids, primary or supplementary, widen access.
func TestOtherUIDRefused(t *testing.T) {
	py := zmqPython(t)
	group, gid := testuser.NewGroup(t)
	other := testuser.New(t)
	member := testuser.New(t, group)
	run := func(u testuser.User, ep string, wait time.Duration) string {
		t.Helper()
		out, err := u.Command(py, "-c", pyDealer, ep, itoa(int(wait/time.Millisecond))).CombinedOutput()
		if err != nil {
			t.Fatalf("python as %s: %v: %s", u.Name, err, out)
		}
		return strings.TrimSpace(string(out))
	}

	var logs lockedBuffer
	lg := slog.New(slog.NewTextHandler(&logs, nil))
	ts := startServer(t, abstractEndpoint(t), Options{Guard: NewGuard(GuardConfig{Logger: lg})}, nil)
	if got := run(other, ts.endpoint(), 1500*time.Millisecond); got != "noreply" {
		t.Fatalf("other uid: %q, want noreply", got)
	}
	ts.quiet(0) // no Connected event for it
	n := strings.Count(logs.String(), "peer refused")
	if n != 1 || !strings.Contains(logs.String(), "uid="+itoa(other.UID)) || !strings.Contains(logs.String(), "reason=\"uid not allowed\"") {
		t.Fatalf("want one refusal line with the uid, got %d:\n%s", n, logs.String())
	}
	c := dialT(t, ts.endpoint(), Options{}) // the owner is served
	ts.next(Connected)
	c.Send([][]byte{[]byte("mine")})
	if got := mustRecv(t, c); string(got[0]) != "mine" {
		t.Fatalf("owner got %q", got)
	}

	for _, tc := range []struct {
		name string
		user testuser.User
		acc  Access
	}{
		{"allow-uid", other, Access{AllowUIDs: []int{other.UID}}},
		{"allow-gid supplementary", member, Access{AllowGIDs: []int{gid}}},
		{"allow-any-local", other, Access{AnyLocal: true}},
	} {
		ts := startServer(t, abstractEndpoint(t), Options{Guard: NewGuard(GuardConfig{Access: tc.acc, Logger: quietLogger})}, nil)
		if got := run(tc.user, ts.endpoint(), testTimeout); got != "reply hello" {
			t.Fatalf("%s: %q, want reply hello", tc.name, got)
		}
		if ev := ts.next(Connected); ev.Conn.Peer().UID != tc.user.UID {
			t.Fatalf("%s: Connected peer %+v, want uid %d", tc.name, ev.Conn.Peer(), tc.user.UID)
		}
	}
}

// pySquatter binds a ROUTER to argv[1] and prints how many messages it
// received before stdin closes.
const pySquatter = `
import sys, zmq, threading
ctx = zmq.Context()
s = ctx.socket(zmq.ROUTER)
s.bind(sys.argv[1])
print("bound", flush=True)
got = []
stop = threading.Event()
def watch():
    sys.stdin.read()
    stop.set()
threading.Thread(target=watch, daemon=True).start()
while not stop.is_set():
    if s.poll(100):
        got.append(s.recv_multipart())
print("received", len(got), flush=True)
`

// A process of another uid that binds the broker's name first is refused
// by Dial before it is sent a byte; BrokerUID names a trusted uid.
func TestSquatterRefused(t *testing.T) {
	py := zmqPython(t)
	other := testuser.New(t)
	ep := abstractEndpoint(t)
	cmd := other.Command(py, "-c", pySquatter, ep)
	stdin, _ := cmd.StdinPipe()
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, testTimeout, "squatter bound", func() bool { return strings.Contains(out.String(), "bound") })

	_, err := dialErr(ep, Options{SocketType: "DEALER"})
	var ub *UntrustedBrokerError
	if !errors.As(err, &ub) || ub.Broker.UID != other.UID {
		t.Fatalf("Dial to a squatter: %v, want UntrustedBrokerError naming uid %d", err, other.UID)
	}
	if !strings.Contains(err.Error(), "uid "+itoa(other.UID)) {
		t.Fatalf("message does not name the uid: %v", err)
	}
	c, err := dialErr(ep, Options{SocketType: "DEALER", BrokerUID: other.UID})
	if err != nil {
		t.Fatalf("Dial with BrokerUID: %v", err)
	}
	c.Send([][]byte{[]byte("trusted")})
	waitFor(t, testTimeout, "", func() bool { q, _ := c.Queued(); return q == 0 })
	time.Sleep(200 * time.Millisecond)
	c.Close()
	stdin.Close()
	cmd.Wait()
	if !strings.Contains(out.String(), "received 1") {
		t.Fatalf("squatter output %q: want exactly the trusted message", out.String())
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func dialErr(endpoint string, opts Options) (*Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	return Dial(ctx, endpoint, opts)
}

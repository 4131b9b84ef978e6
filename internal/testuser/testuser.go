// Package testuser creates throwaway local accounts, so tests can run a
// peer as another uid (access control, squatting brokers). It needs root
// with useradd, groupadd and runuser; without them a test is skipped with
// a message saying so. Accounts and groups are removed when the test ends.
package testuser

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"testing"
)

// User is a throwaway account.
type User struct {
	Name     string
	UID, GID int
}

func require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to create a throwaway user (CI runs as root)")
	}
	for _, tool := range []string{"useradd", "userdel", "groupadd", "groupdel", "runuser"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipped: %s not found (needed to run a peer as another user)", tool)
		}
	}
}

// freshName is unique across concurrent test processes; user names are
// limited to 32 characters.
func freshName(prefix string) string {
	var b [5]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// NewGroup creates a group and returns its name and gid.
func NewGroup(t testing.TB) (string, int) {
	t.Helper()
	require(t)
	name := freshName("zbg")
	run(t, "groupadd", name)
	t.Cleanup(func() { exec.Command("groupdel", name).Run() })
	g, err := user.LookupGroup(name)
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	return name, gid
}

// New creates a user without a home directory, member of the given
// supplementary groups.
func New(t testing.TB, groups ...string) User {
	t.Helper()
	require(t)
	name := freshName("zbu")
	args := []string{"--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group"}
	if len(groups) > 0 {
		args = append(args, "--groups", strings.Join(groups, ","))
	}
	run(t, "useradd", append(args, name)...)
	// userdel also removes the user's own group (--user-group).
	t.Cleanup(func() { exec.Command("userdel", name).Run() })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return User{Name: name, UID: uid, GID: gid}
}

// Command runs a program as u (runuser sets its uid, gid and
// supplementary groups as a login would).
func (u User) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command("runuser", append([]string{"-u", u.Name, "--", name}, args...)...)
	cmd.Dir = "/"
	return cmd
}

// squatter binds a ROUTER to each endpoint given and, when its standard
// input closes, prints how many messages it received.
const squatter = `
import sys, zmq, threading
ctx = zmq.Context()
socks = []
for ep in sys.argv[1:]:
    s = ctx.socket(zmq.ROUTER)
    s.bind(ep)
    socks.append(s)
print("bound", flush=True)
stop = threading.Event()
def watch():
    sys.stdin.read()
    stop.set()
threading.Thread(target=watch, daemon=True).start()
poller = zmq.Poller()
for s in socks:
    poller.register(s, zmq.POLLIN)
got = 0
while not stop.is_set():
    for s, _ in poller.poll(100):
        s.recv_multipart()
        got += 1
print("received", got, flush=True)
`

// WantSquatterRefused runs a pyzmq process as a new throwaway user, bound
// first to the endpoints of a fresh broker name as an impersonator would
// be, then runs client (a command line) against that name. It fails t
// unless client exited 1 saying which uid serves the name and how to
// trust it (--broker-uid), and the squatter was sent nothing.
func WantSquatterRefused(t testing.TB, python string, endpoints func(name string) []string, client func(name string) (code int, stderr string)) {
	t.Helper()
	name := "squat-" + strconv.Itoa(os.Getpid()) + "-" + rand.Text()[:10]
	u := New(t)
	cmd := u.Command(python, append([]string{"-c", squatter}, endpoints(name)...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	first := make([]byte, len("bound\n"))
	if _, err := io.ReadFull(out, first); err != nil || string(first) != "bound\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("squatter did not bind: %q %v: %s", first, err, stderr.String())
	}
	code, clientErr := client(name)
	uid := strconv.Itoa(u.UID)
	if code != 1 || !strings.Contains(clientErr, "served by uid "+uid) || !strings.Contains(clientErr, "--broker-uid "+uid) {
		t.Fatalf("client of a squatter: exit %d, stderr %q", code, clientErr)
	}
	stdin.Close() // the squatter prints "received N" and exits
	rest, _ := io.ReadAll(out)
	cmd.Wait()
	if !strings.Contains(string(rest), "received 0") {
		t.Fatalf("squatter got data: %q", rest)
	}
}

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

// Squat runs a pyzmq process as a new throwaway user, bound to the
// endpoints as a broker impersonator would be. stop ends it and returns
// its output, which ends with "received N" (messages it was sent).
func Squat(t testing.TB, python string, endpoints ...string) (u User, stop func() string) {
	t.Helper()
	u = New(t)
	cmd := u.Command(python, append([]string{"-c", squatter}, endpoints...)...)
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
	return u, func() string {
		stdin.Close()
		rest, _ := io.ReadAll(out)
		cmd.Wait()
		return string(rest)
	}
}

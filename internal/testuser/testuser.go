// Package testuser creates throwaway local accounts, so tests can run a
// peer as another uid (access control, squatting brokers). It needs root
// with useradd, groupadd and runuser; without them a test is skipped with
// a message saying so. Accounts and groups are removed when the test ends.
package testuser

import (
	"crypto/rand"
	"encoding/hex"
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

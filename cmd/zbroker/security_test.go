package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zbroker/zbroker/clone"
	"github.com/zbroker/zbroker/internal/interop"
	"github.com/zbroker/zbroker/internal/testuser"
	"github.com/zbroker/zbroker/majordomo"
	"github.com/zbroker/zbroker/zpipes"
)

func TestExposedTCP(t *testing.T) {
	for ep, want := range map[string]bool{
		"tcp://127.0.0.1:5555": false, "tcp://localhost:0": false, "tcp://[::1]:7": false, "tcp://lo:9": false,
		"tcp://*:5555": true, "tcp://0.0.0.0:1": true, "tcp://192.168.1.2:1": true, "tcp://eth0:1": true,
		"tcp://example.com:1": true, "tcp://nonsense": true, "ipc://@x": false, "ipc:///run/x": false,
	} {
		if got := exposedTCP(ep); got != want {
			t.Errorf("exposedTCP(%q) = %v, want %v", ep, got, want)
		}
	}
}

// tcp beyond loopback needs --insecure-tcp, with a message saying why.
func TestInsecureTCPRequired(t *testing.T) {
	var out bytes.Buffer
	args := []string{"--no-majordomo", "--no-clone", "--endpoint", "tcp://0.0.0.0:0", uniqueName("tcp")}
	if code := run(args, &out, &out); code != 2 || !strings.Contains(out.String(), "--insecure-tcp") {
		t.Fatalf("non-loopback tcp without --insecure-tcp: exit %d\n%s", code, out.String())
	}
	log, done := startRun(t, append([]string{"--insecure-tcp"}, args...)...)
	stopRun(t, log, done)
	log, done = startRun(t, "--no-majordomo", "--no-clone", "--endpoint", "tcp://127.0.0.1:0", uniqueName("tcp"))
	stopRun(t, log, done)
}

// --ipc-dir creates the directory with --ipc-mode whatever the umask,
// serves every default endpoint in it, and refuses a directory of
// another user.
func TestIPCDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	log, done := startRun(t, "--ipc-dir", dir, "--ipc-mode", "0710", uniqueName("dir"))
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o710 {
		t.Fatalf("--ipc-dir mode: %v %v, want 0710", fi.Mode(), err)
	}
	for _, f := range []string{"zpipes", "majordomo", "clone-snapshot", "clone-updates", "clone-collector"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode()&os.ModeSocket == 0 {
			t.Errorf("%s: %v, want a socket", f, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := zpipes.DialEndpoint(ctx, "ipc://"+filepath.Join(dir, "zpipes"))
	if err != nil {
		t.Fatalf("client over --ipc-dir: %v", err)
	}
	c.Disconnect()
	stopRun(t, log, done)

	if os.Geteuid() != 0 {
		return
	}
	group, gid := testuser.NewGroup(t)
	log, done = startRun(t, "--ipc-dir", dir, "--ipc-group", group, uniqueName("dir"))
	stopRun(t, log, done)
	if fi, err := os.Stat(dir); err != nil || fi.Sys().(*syscall.Stat_t).Gid != uint32(gid) || fi.Mode().Perm() != 0o750 {
		t.Fatalf("--ipc-group %s: %v, want group %d and mode 0750", group, err, gid)
	}
	other := testuser.New(t)
	os.Chown(dir, other.UID, other.GID)
	var out bytes.Buffer
	if code := run([]string{"--ipc-dir", dir, uniqueName("dir")}, &out, &out); code != 2 || !strings.Contains(out.String(), "another user") {
		t.Fatalf("--ipc-dir of another user: exit %d\n%s", code, out.String())
	}
}

// intruder tries, for argv[2] ms, what a second local user could do to a
// broker named argv[1] before access control: open, read and write a
// pipe, register as a Majordomo worker, take a Clone snapshot, subscribe
// to updates and send KVSETs. It prints how many messages each socket got.
const intruder = `
import sys, json, struct, time, zmq
name, wait = sys.argv[1], int(sys.argv[2])
ctx = zmq.Context()
def sock(typ, ep):
    s = ctx.socket(typ)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(ep)
    return s
z = sock(zmq.DEALER, "ipc://@/zpipes/" + name)
for m in ([b"OPEN", b"secret"], [b"READ", b"secret"], [b"WRITE", b"secret", b"injected"]):
    z.send_multipart(m)
w = sock(zmq.DEALER, "ipc://@/majordomo/" + name)
w.send_multipart([b"", b"MDPW01", b"\x01", b"echo"])
snap = sock(zmq.DEALER, "ipc://@/clone/" + name + "/snapshot")
snap.send_multipart([b"ICANHAZ?", b""])
sub = ctx.socket(zmq.SUB)
sub.setsockopt(zmq.SUBSCRIBE, b"")
sub.connect("ipc://@/clone/" + name + "/updates")
pub = sock(zmq.PUB, "ipc://@/clone/" + name + "/collector")
names = {z: "zpipes", w: "majordomo", snap: "snapshot", sub: "updates"}
got = dict((n, 0) for n in names.values())
poller = zmq.Poller()
for s in names:
    poller.register(s, zmq.POLLIN)
deadline = time.time() + wait / 1000
while time.time() < deadline:
    pub.send_multipart([b"secret", struct.pack(">Q", 0), b"0" * 16, b"", b"overwritten"])
    for s, _ in poller.poll(100):
        s.recv_multipart()
        got[names[s]] += 1
print(json.dumps(got))
`

func runIntruder(t *testing.T, u testuser.User, name string) map[string]int {
	t.Helper()
	out, err := u.Command(interop.Python(t), "-c", intruder, name, "2000").Output()
	if err != nil {
		t.Fatalf("intruder as %s: %v", u.Name, err)
	}
	got := map[string]int{}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("intruder output %q: %v", out, err)
	}
	return got
}

// Another local uid gets nothing from any service (no pipe data, no
// Majordomo requests, no Clone keys) and changes nothing, while the owner
// is served; --allow-uid and --allow-gid (a supplementary group) admit it.
func TestOtherUIDRefusedByServices(t *testing.T) {
	group, _ := testuser.NewGroup(t)
	other := testuser.New(t)
	member := testuser.New(t, group)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	name := uniqueName("uid")
	log, done := startRun(t, "--mdp-heartbeat", "200ms", name)
	zc, err := zpipes.Dial(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer zc.Disconnect()
	if err := zc.Open(ctx, "secret"); err != nil {
		t.Fatal(err)
	}
	if err := zc.Write(ctx, "secret", []byte("mine")); err != nil {
		t.Fatal(err)
	}
	kv, err := clone.Connect(ctx, clone.ClientOptions{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	if err := kv.SetWait(ctx, "secret", []byte("owner"), 0); err != nil {
		t.Fatal(err)
	}

	if got := runIntruder(t, other, name); got["zpipes"]+got["majordomo"]+got["snapshot"]+got["updates"] != 0 {
		t.Fatalf("another uid was answered: %v", got)
	}
	if !strings.Contains(log.String(), "peer refused") || !strings.Contains(log.String(), "uid="+strconv.Itoa(other.UID)) {
		t.Errorf("refusal not logged with the uid:\n%s", log.String())
	}
	// The owner is served, and nothing of its was taken or changed.
	if chunk, err := zc.Read(ctx, "secret"); err != nil || string(chunk) != "mine" {
		t.Fatalf("owner's chunk after the intrusion: %q, %v", chunk, err)
	}
	if v, _ := kv.Get("secret"); string(v) != "owner" {
		t.Fatalf("owner's key after the intrusion: %q", v)
	}
	mdp, err := majordomo.NewClient(majordomo.Endpoint(name), majordomo.ClientOptions{Timeout: 5 * time.Second, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	reply, err := mdp.Call(ctx, "mmi.service", []byte("echo"))
	mdp.Close()
	if err != nil || string(reply[0]) != "404" {
		t.Fatalf("intruder's worker registered: mmi.service echo = %q, %v", reply, err)
	}
	kv.Close()
	zc.Disconnect()
	stopRun(t, log, done)

	for _, tc := range []struct {
		flag string
		user testuser.User
	}{
		{"--allow-uid=" + other.Name, other},
		{"--allow-gid=" + group, member},
	} {
		name := uniqueName("allow")
		log, done := startRun(t, "--mdp-heartbeat", "200ms", tc.flag, name)
		got := runIntruder(t, tc.user, name)
		for _, svc := range []string{"zpipes", "majordomo", "snapshot", "updates"} {
			if got[svc] == 0 {
				t.Errorf("%s: %s not served: %v", tc.flag, svc, got)
			}
		}
		stopRun(t, log, done)
	}
}

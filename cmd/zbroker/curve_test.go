package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/interop"
	"github.com/zbroker/zbroker/majordomo"
	"github.com/zbroker/zbroker/zmtp"
	"github.com/zbroker/zbroker/zpipes"
)

// keygenFile runs "zbroker keygen --secret-file" and returns the printed
// public key.
func keygenFile(t *testing.T, path string) zmtp.CurveKey {
	t.Helper()
	var out bytes.Buffer
	if code := run([]string{"keygen", "--secret-file", path}, &out, &out); code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || lines[0] != "== CURVE PUBLIC KEY ==" {
		t.Fatalf("keygen printed %q", out.String())
	}
	k, err := zmtp.ParseCurveKey(lines[1])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeygen(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"keygen"}, &out, &out); code != 0 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || lines[0] != "== CURVE PUBLIC KEY ==" || lines[2] != "== CURVE SECRET KEY ==" {
		t.Fatalf("keygen printed %q", out.String())
	}
	pub, err1 := zmtp.ParseCurveKey(lines[1])
	sec, err2 := zmtp.ParseCurveKey(lines[3])
	if derived, _ := zmtp.CurvePublicKey(sec); err1 != nil || err2 != nil || derived != pub {
		t.Fatalf("the printed keys are not a pair: %v %v", err1, err2)
	}
	path := filepath.Join(t.TempDir(), "k")
	keygenFile(t, path)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", fi.Mode(), err)
	}
	if code := run([]string{"keygen", "--secret-file", path}, &out, &out); code == 0 {
		t.Fatal("keygen overwrote a key file")
	}
}

// The CURVE flags refuse what would be unsafe or incomplete, and with
// CURVE on, tcp beyond loopback needs no --insecure-tcp.
func TestCurveFlags(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "server.key")
	keygenFile(t, secret)
	open := filepath.Join(dir, "open.key")
	data, _ := os.ReadFile(secret)
	os.WriteFile(open, data, 0o644)
	os.Chmod(open, 0o644)
	clients := filepath.Join(dir, "clients")
	pub, _, _ := zmtp.NewCurveKeyPair()
	os.WriteFile(clients, []byte("# admitted\n"+pub.String()+"\n"), 0o644)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("# nobody\n"), 0o644)
	base := []string{"--no-majordomo", "--no-clone", "--endpoint", "tcp://127.0.0.1:0"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--curve-secret-key-file", open, "--curve-clients", clients}, "chmod 600"},
		{[]string{"--curve-secret-key-file", secret}, "needs --curve-clients"},
		{[]string{"--curve-clients", clients}, "needs --curve-secret-key-file"},
		{[]string{"--curve-secret-key-file", secret, "--curve-clients", empty}, "no keys"},
		{[]string{"--curve-secret-key-file", filepath.Join(dir, "none"), "--curve-clients", clients}, "no such file"},
	} {
		var out bytes.Buffer
		if code := run(append(append(c.args, base...), uniqueName("curve")), &out, &out); code != 2 || !strings.Contains(out.String(), c.want) {
			t.Errorf("%q: exit %d, %q; want 2 and %q", c.args, code, out.String(), c.want)
		}
	}
	name := uniqueName("curve")
	log, done := startRun(t, "--no-clone", "--endpoint", "tcp://0.0.0.0:0",
		"--curve-secret-key-file", secret, "--curve-clients", "*", name)
	defer stopRun(t, log, done)
	if !strings.Contains(log.String(), "admitted_clients=any") {
		t.Errorf("log: %s", log.String())
	}
	// ipc endpoints stay NULL, under the local access rules.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := zmtp.Dial(ctx, majordomo.Endpoint(name), zmtp.Options{SocketType: "DEALER"})
	if err != nil {
		t.Fatalf("NULL on ipc: %v", err)
	}
	c.Close()
}

var endpointAttr = regexp.MustCompile(`(zpipes|majordomo|clone_snapshot|clone_updates|clone_collector)=(\S+)`)

// TestCurveServicesInterop: with CURVE on, libzmq clients use every
// service over tcp (zpipes DEALER with a 16 MiB chunk and REQ, a
// Majordomo worker and client, Clone updates, collector and snapshot);
// the log names their key; a client key not admitted is refused with a
// log line that says so; our own Go client works over CURVE.
func TestCurveServicesInterop(t *testing.T) {
	py := interop.Python(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "server.key")
	serverKey := keygenFile(t, secret)
	out, err := exec.Command(py, "-c", "import zmq; print(*(k.decode() for k in zmq.curve_keypair()))").CombinedOutput()
	if err != nil {
		t.Fatalf("curve_keypair: %v %s", err, out)
	}
	pyKeys := strings.Fields(string(out))
	goPub, goSec, _ := zmtp.NewCurveKeyPair()
	clients := filepath.Join(dir, "clients")
	os.WriteFile(clients, []byte("# python\n"+pyKeys[0]+"\n"+goPub.String()+" # go\n"), 0o644)

	tcp := "tcp://127.0.0.1:0"
	name := uniqueName("curve")
	log, done := startRun(t, "-v", "--curve-secret-key-file", secret, "--curve-clients", clients, "--mdp-endpoint", tcp,
		"--endpoint", tcp, "--clone-snapshot", tcp, "--clone-updates", tcp, "--clone-collector", tcp, name)
	defer stopRun(t, log, done)
	eps := map[string]string{}
	for _, m := range endpointAttr.FindAllStringSubmatch(log.String(), -1) {
		eps[m[1]] = m[2]
	}

	cmd := exec.Command(py, filepath.Join("testdata", "curve_services.py"), eps["zpipes"], eps["majordomo"],
		eps["clone_snapshot"], eps["clone_updates"], eps["clone_collector"])
	cmd.Env = append(os.Environ(), "ZBROKER_CURVE="+serverKey.String()+" "+pyKeys[0]+" "+pyKeys[1], "PYTHONDONTWRITEBYTECODE=1")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("curve_services.py: %v\n%s\n--- broker log ---\n%s", err, out, log.String())
	}
	if !strings.Contains(log.String(), pyKeys[0]) || !strings.Contains(log.String(), "peer connected") {
		t.Errorf("the log does not name the client key %s:\n%s", pyKeys[0], log.String())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	curve := &zmtp.CurveOptions{PublicKey: goPub, SecretKey: goSec, ServerKey: serverKey}
	c, err := zpipes.DialEndpoint(ctx, eps["zpipes"], zpipes.WithCurve(curve))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(ctx, "go"); err != nil {
		t.Fatal(err)
	}
	if err := c.Write(ctx, "go", []byte("over curve")); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Read(ctx, "go"); string(got) != "over curve" || err != nil {
		t.Fatalf("read %q, %v", got, err)
	}
	c.Disconnect()

	// A key not on the list is refused, and the log says so.
	stranger, strangerSec, _ := zmtp.NewCurveKeyPair()
	_, err = zpipes.DialEndpoint(ctx, eps["zpipes"], zpipes.WithCurve(&zmtp.CurveOptions{PublicKey: stranger, SecretKey: strangerSec, ServerKey: serverKey}))
	if err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("stranger: %v, want a refusal", err)
	}
	waitLog(t, log, "peer refused in handshake", stranger.String(), "not in the admitted client keys")
	// A NULL client on tcp is refused too.
	if _, err = zpipes.DialEndpoint(ctx, eps["zpipes"]); err == nil || !strings.Contains(err.Error(), "mechanism mismatch") {
		t.Fatalf("NULL client on tcp: %v", err)
	}
	waitLog(t, log, "peer offers NULL, this endpoint requires CURVE")
}

var pythonBlock = regexp.MustCompile("(?s)```python\n(.*?)```")

// TestCurveDocsPython runs docs/curve.md's pyzmq example against a broker
// with the example's keys (libzmq's test keys), so the doc stays true.
func TestCurveDocsPython(t *testing.T) {
	py := interop.Python(t)
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "curve.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := pythonBlock.FindSubmatch(doc)
	if m == nil {
		t.Fatal("no python example in docs/curve.md")
	}
	dir := t.TempDir()
	secret := filepath.Join(dir, "broker.key")
	os.WriteFile(secret, []byte("JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6\n"), 0o600)
	clients := filepath.Join(dir, "clients")
	os.WriteFile(clients, []byte("Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID\n"), 0o644)
	log, done := startRun(t, "--no-majordomo", "--no-clone", "--endpoint", "tcp://127.0.0.1:0",
		"--curve-secret-key-file", secret, "--curve-clients", clients, uniqueName("curvedoc"))
	defer stopRun(t, log, done)
	ep := endpointAttr.FindStringSubmatch(log.String())[2]
	script := strings.Replace(string(m[1]), "tcp://broker.example:5555", ep, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-c", script+"\nimport os; os._exit(0)  # no linger").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "[b'OK']" {
		t.Fatalf("the example printed %q (%v)\n%s", out, err, log.String())
	}
}

// SIGHUP reads --curve-clients again: a key added to the file is admitted
// from then on, one removed is refused, and a broken file changes nothing.
func TestCurveClientsReload(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "server.key")
	serverKey := keygenFile(t, secret)
	aPub, aSec, _ := zmtp.NewCurveKeyPair()
	bPub, bSec, _ := zmtp.NewCurveKeyPair()
	clients := filepath.Join(dir, "clients")
	os.WriteFile(clients, []byte(aPub.String()+"\n"), 0o644)
	log, done := startRun(t, "--no-majordomo", "--no-clone", "--endpoint", "tcp://127.0.0.1:0",
		"--curve-secret-key-file", secret, "--curve-clients", clients, uniqueName("curvehup"))
	defer stopRun(t, log, done)
	ep := endpointAttr.FindStringSubmatch(log.String())[2]
	dial := func(pub, sec zmtp.CurveKey) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := zmtp.Dial(ctx, ep, zmtp.Options{SocketType: "DEALER", Curve: &zmtp.CurveOptions{PublicKey: pub, SecretKey: sec, ServerKey: serverKey}})
		if err == nil {
			c.Close()
		}
		return err
	}
	if dial(aPub, aSec) != nil || dial(bPub, bSec) == nil {
		t.Fatal("before the reload: want A admitted, B refused")
	}
	os.WriteFile(clients, []byte(bPub.String()+"\n"), 0o644)
	syscall.Kill(syscall.Getpid(), syscall.SIGHUP)
	waitLog(t, log, "CURVE client keys reloaded", "admitted_clients=1")
	if dial(bPub, bSec) != nil || dial(aPub, aSec) == nil {
		t.Fatal("after the reload: want B admitted, A refused")
	}
	os.WriteFile(clients, []byte("not a key\n"), 0o644)
	syscall.Kill(syscall.Getpid(), syscall.SIGHUP)
	waitLog(t, log, "CURVE client keys not reloaded")
	if dial(bPub, bSec) != nil {
		t.Fatal("a broken file changed the admitted keys")
	}
}

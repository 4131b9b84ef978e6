package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/interop"
	"github.com/zbroker/zbroker/internal/observe"
	"github.com/zbroker/zbroker/internal/testuser"
	"github.com/zbroker/zbroker/zpipes"
)

// The broker serves --http and answers `zbroker status` with what it
// holds.
func TestStatusAndHTTP(t *testing.T) {
	name := uniqueName("status")
	out, done := startRun(t, "--http", "127.0.0.1:0", name)
	defer stopRun(t, out, done)
	m := regexp.MustCompile(`http=(127\.0\.0\.1:\d+)`).FindStringSubmatch(out.String())
	if m == nil || !strings.Contains(out.String(), "control=ipc://@/zbroker/"+name+"/control") {
		t.Fatalf("ready line lacks http= and control=:\n%s", out.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := zpipes.Dial(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	if err := c.Open(ctx, "jobs"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := c.Write(ctx, "jobs", []byte("work")); err != nil {
			t.Fatal(err)
		}
	}

	resp, err := http.Get("http://" + m[1] + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "zpipes: serving") {
		t.Errorf("/healthz: %d %q", resp.StatusCode, body)
	}
	if resp, err := http.Get("http://" + m[1] + "/debug/pprof/"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without --pprof: %v %v, want 404", resp.StatusCode, err)
	}

	var stdout, stderr bytes.Buffer
	if code := run([]string{"status", name}, &stdout, &stderr); code != 0 {
		t.Fatalf("zbroker status: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	table := stdout.String()
	if !regexp.MustCompile(`(?m)^\s+jobs\s+3\s+`).MatchString(table) || !strings.Contains(table, "broker "+name+": healthy") ||
		!strings.Contains(table, "chunks written 3, read 0") {
		t.Errorf("status table:\n%s", table)
	}

	stdout.Reset()
	if code := run([]string{"status", "--json", "-b", name}, &stdout, &stderr); code != 0 {
		t.Fatalf("zbroker status --json: exit %d\n%s", code, stderr.String())
	}
	var r observe.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil || r.Zpipes == nil || r.Zpipes.QueuedChunks != 3 ||
		len(r.Zpipes.PipeList) != 1 || r.Zpipes.PipeList[0].Name != "jobs" {
		t.Errorf("status --json: %v\n%s", err, stdout.String())
	}
}

func TestStatusNotRunning(t *testing.T) {
	name := uniqueName("absent")
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := run([]string{"status", name}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), `no broker named "`+name+`" is running`) {
		t.Errorf("status of a broker that does not run: exit %d, %q", code, stderr.String())
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v to say the broker is not running", d)
	}
}

func TestStatusUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status", "--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "usage: zbroker status") ||
		!strings.Contains(stdout.String(), "-json") {
		t.Errorf("status --help: exit %d\n%s", code, stdout.String())
	}
	for _, args := range [][]string{{"status", "a", "b"}, {"status", "--limit", "-1"}, {"status", "--nope"}} {
		stderr.Reset()
		if code := run(args, &stdout, &stderr); code != 2 || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%q: exit %d, %q; want 2 and one line", args, code, stderr.String())
		}
	}
}

// --http or --control-endpoint on an address other than loopback is
// refused, and the broker does not start (nor keep its endpoints).
func TestHTTPRefusesNonLoopback(t *testing.T) {
	name := uniqueName("http")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--http", "0.0.0.0:0", name}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "--insecure-tcp") {
		t.Fatalf("--http 0.0.0.0:0: exit %d, %q; want 1 and a hint at --insecure-tcp", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"--control-endpoint", "tcp://0.0.0.0:0", name}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "--insecure-tcp") {
		t.Fatalf("--control-endpoint tcp://0.0.0.0:0: exit %d, %q; want 1 and a hint at --insecure-tcp", code, stderr.String())
	}
	srv, err := zpipes.Start(zpipes.Options{Name: name})
	if err != nil {
		t.Fatalf("zpipes endpoint left bound after the failed start: %v", err)
	}
	srv.Close()
}

// With --ipc-dir the control endpoint moves into the directory too.
func TestStatusWithIPCDir(t *testing.T) {
	dir := t.TempDir() + "/ipc"
	name := uniqueName("ipcdir")
	out, done := startRun(t, "--ipc-dir", dir, name)
	defer stopRun(t, out, done)
	if !strings.Contains(out.String(), "control=ipc://"+dir+"/control") {
		t.Fatalf("ready line lacks the control endpoint in %s:\n%s", dir, out.String())
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status", "--ipc-dir", dir, name}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "zpipes: serving") {
		t.Errorf("status --ipc-dir: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
}

// statsPeer is a libzmq REQ peer asking the control endpoint for STATS.
const statsPeer = `
import json, sys, zmq
s = zmq.Context().socket(zmq.REQ)
s.setsockopt(zmq.LINGER, 0)
s.setsockopt(zmq.RCVTIMEO, int(sys.argv[2]))
s.connect(sys.argv[1])
s.send_multipart([b"STATS", b"1"])
try:
    r = s.recv_multipart()
except zmq.Again:
    print("no answer")
    sys.exit(0)
if r[0] == b"OK":
    z = json.loads(r[1])["zpipes"]
    print("OK", z["pipes"], len(z["pipe_list"]))
else:
    print(r[0].decode(), r[1].decode())
`

// The control endpoint speaks plain ZMTP to libzmq, and admits only the
// peers the services admit: another uid gets no answer.
func TestControlEndpointLibzmqAndAccess(t *testing.T) {
	python := interop.Python(t)
	name := uniqueName("ctl")
	out, done := startRun(t, name)
	defer stopRun(t, out, done)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := zpipes.Dial(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	for _, p := range []string{"a", "b"} {
		if err := c.Open(ctx, p); err != nil {
			t.Fatal(err)
		}
		if err := c.Write(ctx, p, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	ep := observe.ControlEndpoint(name)
	got, err := exec.Command(python, "-c", statsPeer, ep, "5000").Output()
	if err != nil || strings.TrimSpace(string(got)) != "OK 2 1" {
		t.Fatalf("pyzmq REQ asking STATS 1: %q, %v; want OK, 2 pipes, 1 listed", got, err)
	}
	if os.Geteuid() != 0 {
		t.Skip("another uid needs root to create")
	}
	other := testuser.New(t)
	got, err = other.Command(python, "-c", statsPeer, ep, "1000").Output()
	if err != nil || strings.TrimSpace(string(got)) != "no answer" {
		t.Fatalf("another uid asking STATS: %q, %v; want no answer", got, err)
	}
	if !strings.Contains(out.String(), "peer refused") || !strings.Contains(out.String(), "/zbroker/"+name+"/control") {
		t.Errorf("refusal on the control endpoint not logged:\n%s", out.String())
	}
}

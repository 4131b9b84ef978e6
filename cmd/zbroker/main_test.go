package main

// In-process tests of the command line (run). The built binary is tested
// end to end, with libzmq clients, in zpipes/interop_test.go.

import (
	"bytes"
	"context"
	"crypto/rand"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zbroker/zbroker/clone"
	"github.com/zbroker/zbroker/internal/testsupport"
	"github.com/zbroker/zbroker/majordomo"
	"github.com/zbroker/zbroker/zpipes"
)

type syncBuffer = testsupport.Buffer // the name this package's tests use

func uniqueName(tag string) string { return "itest-" + tag + "-" + rand.Text()[:10] }

func TestRunHelpExitsZero(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--help"}, &out, &out); code != 0 {
		t.Fatalf("--help: exit %d, want 0\n%s", code, out.String())
	}
	for _, want := range []string{"usage: zbroker", "-pipe-limit", "-total-limit", "-max-chunk", "-pending-limit", "-endpoint"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"--no-such-flag", uniqueName("bad")},
		{"--pipe-limit", "lots", uniqueName("bad")},
		{uniqueName("one"), uniqueName("two")},
		{"--no-zpipes", "--no-majordomo", "--no-clone", uniqueName("none")},
	} {
		var out bytes.Buffer
		if code := run(args, &out, &out); code != 2 {
			t.Errorf("zbroker %q: exit %d, want 2\n%s", args, code, out.String())
		}
	}
}

func TestRunNameInUse(t *testing.T) {
	name := uniqueName("inuse")
	srv, err := zpipes.Start(zpipes.Options{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var out bytes.Buffer
	if code := run([]string{name}, &out, &out); code != 1 {
		t.Fatalf("second broker named %q: exit %d, want 1\n%s", name, code, out.String())
	}
	if !strings.Contains(out.String(), "already running") || !strings.Contains(out.String(), name) {
		t.Fatalf("message should name the broker and say it is already running:\n%s", out.String())
	}
}

// startRun runs the broker in the background and waits until it has
// is ready (the signal handler is installed before "zbroker ready").
func startRun(t *testing.T, args ...string) (*syncBuffer, chan int) {
	t.Helper()
	out := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(args, out, out) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "zbroker ready") {
		select {
		case code := <-done:
			t.Fatalf("run exited %d before starting:\n%s", code, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker did not start:\n%s", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return out, done
}

// stopRun sends SIGTERM and expects a prompt exit 0.
func stopRun(t *testing.T, out *syncBuffer, done chan int) {
	t.Helper()
	syscall.Kill(syscall.Getpid(), syscall.SIGTERM)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after SIGTERM, want 0\n%s", code, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("run did not return after SIGTERM:\n%s", out.String())
	}
}

func TestRunStopsOnSIGTERM(t *testing.T) {
	name := uniqueName("term")
	out, done := startRun(t, "--pipe-limit", "1MiB", name)
	if !strings.Contains(out.String(), "pipe_limit=1MiB") {
		t.Errorf("start log does not show --pipe-limit 1MiB:\n%s", out.String())
	}
	// The same process serves Majordomo: MMI answers.
	mdp, err := majordomo.NewClient(majordomo.Endpoint(name), majordomo.ClientOptions{Timeout: 5 * time.Second, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	reply, err := mdp.Call(context.Background(), "mmi.service", []byte("echo"))
	mdp.Close()
	if err != nil || len(reply) != 1 || string(reply[0]) != "404" {
		t.Fatalf("mmi.service echo: %q, %v; want 404", reply, err)
	}
	// And Clone: a value set through the collector comes back.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := clone.Connect(ctx, clone.ClientOptions{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.SetWait(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if v, ok := kv.Get("k"); !ok || string(v) != "v" {
		t.Fatalf("clone get k: %q, %v", v, ok)
	}
	kv.Close()
	stopRun(t, out, done)
	if !strings.Contains(out.String(), "zbroker stopped") || !strings.Contains(out.String(), "discarded_chunks=0") ||
		!strings.Contains(out.String(), "discarded_keys=1") {
		t.Fatalf("stop log lacks \"zbroker stopped ... discarded_chunks=0\":\n%s", out.String())
	}
}

// A Majordomo endpoint in use fails the start (and releases zpipes),
// unless --no-majordomo says not to serve it.
func TestRunServiceSwitches(t *testing.T) {
	name := uniqueName("switch")
	busy, err := majordomo.Start(majordomo.Options{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	var out bytes.Buffer
	if code := run([]string{name}, &out, &out); code != 1 || !strings.Contains(out.String(), "already running") {
		t.Fatalf("Majordomo endpoint in use: exit %d, want 1 with a clear message\n%s", code, out.String())
	}
	if srv, err := zpipes.Start(zpipes.Options{Name: name}); err != nil {
		t.Fatalf("zpipes endpoint left bound after the failed start: %v", err)
	} else {
		srv.Close()
	}
	log, done := startRun(t, "--no-majordomo", name)
	if strings.Contains(log.String(), "majordomo=") {
		t.Errorf("--no-majordomo still logs a Majordomo endpoint:\n%s", log.String())
	}
	stopRun(t, log, done)
}

func TestMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		flag, total, receive int64
		env                  string
		want                 int64
	}{
		{0, 1 << 30, 16 << 20, "", 1<<30 + 16<<20 + memoryHeadroom},
		{0, 64 << 20, 0, "", 64<<20 + memoryHeadroom},
		{512 << 20, 1 << 30, 16 << 20, "", 512 << 20},
		{512 << 20, 1 << 30, 16 << 20, "2GiB", 0},
	} {
		if got := memoryLimit(c.flag, c.total, c.receive, c.env); got != c.want {
			t.Errorf("memoryLimit(%d, %d, %d, %q) = %d, want %d", c.flag, c.total, c.receive, c.env, got, c.want)
		}
	}
}

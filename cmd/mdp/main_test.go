package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zbroker/zbroker/majordomo"
)

func startBroker(t *testing.T, opts majordomo.Options) (*majordomo.Server, string) {
	t.Helper()
	opts.Name = fmt.Sprintf("mdp-cli-%d", rand.Uint64())
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := majordomo.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, opts.Name
}

type result struct {
	code           int
	stdout, stderr string
}

func mdp(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

func (r result) want(t *testing.T, code int, stdout, stderrHas string) {
	t.Helper()
	if r.code != code || r.stdout != stdout || !strings.Contains(r.stderr, stderrHas) {
		t.Fatalf("got exit %d stdout %q stderr %q; want exit %d stdout %q stderr containing %q",
			r.code, r.stdout, r.stderr, code, stdout, stderrHas)
	}
}

// startEchoWorker runs "mdp echo-worker" until the test ends.
func startEchoWorker(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		run(ctx, append(args[:len(args):len(args)], "echo-worker", "echo"), io.Discard, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

func waitWorkers(t *testing.T, srv *majordomo.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for srv.Stats().Workers != n {
		if time.Now().After(deadline) {
			t.Fatalf("workers: %+v, want %d", srv.Stats(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCLI(t *testing.T) {
	srv, name := startBroker(t, majordomo.Options{RequestTimeout: 200 * time.Millisecond})
	startEchoWorker(t, "-b", name)
	startEchoWorker(t, "-b", name, "--protocol", "2")
	waitWorkers(t, srv, 2)

	mdp(t, "-b", name, "call", "echo", "hello", "world").want(t, 0, "hello\nworld\n", "")
	mdp(t, "-b", name, "--protocol", "2", "call", "echo", "x").want(t, 0, "x\n", "")
	mdp(t, "call", "--endpoint", srv.Endpoint(), "echo").want(t, 0, "\n", "")
	mdp(t, "-b", name, "mmi", "service", "echo").want(t, 0, "200\n", "")
	mdp(t, "-b", name, "mmi", "service", "nosuch").want(t, 1, "404\n", "")
	mdp(t, "-b", name, "mmi", "workers", "echo").want(t, 0, "2\n", "")
	mdp(t, "-b", name, "workers", "echo").want(t, 0, "2\n", "")
	mdp(t, "-b", name, "--protocol", "2", "mmi", "mmi.bogus").want(t, 0, "501\n", "")
	mdp(t, "-b", name, "call", "nobody", "x").want(t, 1, "", "504 nobody: no worker for service nobody")

	mdp(t).want(t, 2, "", "missing command")
	mdp(t, "frobnicate").want(t, 2, "", "unknown command")
	mdp(t, "call").want(t, 2, "", "missing SERVICE")
	mdp(t, "--protocol", "3", "call", "x").want(t, 2, "", "--protocol must be 1 or 2")
	mdp(t, "mmi", "service").want(t, 2, "", "missing NAME")
}

// A broker that is not running is reported at once and as such; a running
// broker whose service has no worker is not called "no broker".
func TestCLINoBrokerNoWorker(t *testing.T) {
	name := fmt.Sprintf("absent-%d", rand.Uint64())
	for _, cmd := range [][]string{{"call", "echo"}, {"echo-worker", "echo"}, {"workers", "echo"}} {
		start := time.Now()
		r := mdp(t, append([]string{"-b", name}, cmd...)...)
		r.want(t, 1, "", fmt.Sprintf("mdp: no broker %q at ipc://@/majordomo/%s (is zbroker running?)\n", name, name))
		if d := time.Since(start); d > 5*time.Second { // a hang guard
			t.Fatalf("%q took %v", cmd, d)
		}
	}
	_, name = startBroker(t, majordomo.Options{})
	r := mdp(t, "-b", name, "--timeout", "50ms", "--retries", "1", "call", "echo")
	r.want(t, 1, "", "echo: no reply within --timeout 50ms after 2 attempt(s) (is a worker serving it?")
	if strings.Contains(r.stderr, "no broker") {
		t.Fatalf("running broker reported as missing: %q", r.stderr)
	}
}

func TestCLIHelpAndUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		r := mdp(t, args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "usage: mdp") || r.stderr != "" {
			t.Errorf("%q: %+v", args, r)
		}
	}
	r := mdp(t, "call", "--bogus", "x")
	if r.code != 2 || r.stderr != "mdp: flag provided but not defined: -bogus (run 'mdp --help' for usage)\n" {
		t.Errorf("bad flag: %+v", r)
	}
	if r := mdp(t, "--version"); r.code != 0 || !strings.HasPrefix(r.stdout, "mdp ") {
		t.Errorf("--version: %+v", r)
	}
}

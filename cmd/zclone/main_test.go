package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zbroker/zbroker/clone"
	"github.com/zbroker/zbroker/internal/testsupport"
)

func TestCommands(t *testing.T) {
	name := fmt.Sprintf("zclone-test-%d", os.Getpid())
	s, err := clone.Start(clone.Options{Name: name, HeartbeatInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	zc := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"-b", name}, args...), &out, &errb)
		return out.String() + errb.String(), code
	}
	if out, code := zc("set", "/a/1", "one"); code != 0 {
		t.Fatalf("set: %d %s", code, out)
	}
	if out, code := zc("set", "--ttl", "30", "/a/2", "two"); code != 0 {
		t.Fatalf("set: %d %s", code, out)
	}
	if out, code := zc("get", "/a/1"); code != 0 || out != "one\n" {
		t.Fatalf("get: %d %q", code, out)
	}
	if out, code := zc("dump", "/a/"); code != 0 || out != "/a/1=one\n/a/2=two\n" {
		t.Fatalf("dump: %d %q", code, out)
	}
	if out, code := zc("del", "/a/1"); code != 0 {
		t.Fatalf("del: %d %s", code, out)
	}
	if out, code := zc("get", "/a/1"); code != 1 || !strings.Contains(out, "not set") {
		t.Fatalf("get deleted: %d %q", code, out)
	}
	// watch prints changes until its context ends.
	ctx, cancel := context.WithCancel(context.Background())
	var wout testsupport.Buffer
	watchDone := make(chan int)
	go func() { watchDone <- run(ctx, []string{"-b", name, "watch", "/w/"}, &wout, &wout) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(wout.String(), "/w/x") {
		if time.Now().After(deadline) {
			t.Fatalf("watch printed %q", wout.String())
		}
		// Until watch has its snapshot the set may come before it.
		zc("set", "/w/x", "hello")
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-watchDone; code != 0 || !strings.Contains(wout.String(), " /w/x hello\n") {
		t.Fatalf("watch: %d %q", code, wout.String())
	}
	if _, code := zc("bogus"); code != 2 {
		t.Fatalf("bogus: %d", code)
	}
	snap, pub, coll, err := endpoints("tcp://127.0.0.1:5556")
	if err != nil || snap != "tcp://127.0.0.1:5556" || pub != "tcp://127.0.0.1:5557" || coll != "tcp://127.0.0.1:5558" {
		t.Fatalf("endpoints %s %s %s %v", snap, pub, coll, err)
	}
}

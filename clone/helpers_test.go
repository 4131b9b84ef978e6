package clone

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

const testTimeout = 15 * time.Second

var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

var nameSeq atomic.Uint64

func uniqName(t testing.TB) string {
	return fmt.Sprintf("test-%d-%d", os.Getpid(), nameSeq.Add(1))
}

func startServer(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Name == "" {
		opts.Name = uniqName(t)
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger
	}
	if opts.HeartbeatInterval == 0 {
		opts.HeartbeatInterval = 100 * time.Millisecond
	}
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func clientOpts(s *Server, subtree string) ClientOptions {
	ep := s.Endpoints()
	return ClientOptions{
		SnapshotEndpoint:  ep.Snapshot,
		PublisherEndpoint: ep.Publisher,
		CollectorEndpoint: ep.Collector,
		Subtree:           subtree,
		HeartbeatTimeout:  time.Second,
		RetryInterval:     50 * time.Millisecond,
		Logger:            quietLogger,
	}
}

func connect(t testing.TB, opts ClientOptions) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := Connect(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func nextUpdate(t testing.TB, ch <-chan Update) Update {
	t.Helper()
	select {
	case u, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return u
	case <-time.After(testTimeout):
		t.Fatal("no update")
	}
	panic("unreachable")
}

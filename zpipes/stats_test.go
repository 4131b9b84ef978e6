package zpipes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/owner"
)

func TestSnapshotCountsPipesAndConnections(t *testing.T) {
	srv := startServer(t, Options{PipeLimit: 1000})
	w, r := dialPeer(t, srv), dialPeer(t, srv)
	// Pipe "deep": 3 chunks from w, then one WRITE held by the 1000-byte
	// pipe limit; pipe "shallow": 1 chunk; pipe "read": written and read.
	for _, p := range []string{"deep", "shallow", "read"} {
		w.send("OPEN", p)
		w.recv()
	}
	for range 3 {
		w.send("WRITE", "deep", string(make([]byte, 400)))
		w.recv()
	}
	w.send("WRITE", "deep", "held")
	w.silent()
	w2 := dialPeer(t, srv)
	w2.send("OPEN", "shallow")
	w2.recv()
	w2.send("WRITE", "shallow", "x")
	w2.recv()
	r.send("OPEN", "read")
	r.recv()
	r.send("READ", "read") // waits
	w2.send("OPEN", "read")
	w2.recv()
	w2.send("WRITE", "read", "abc")
	w2.recv()
	if got := r.recv(); got != "abc" {
		t.Fatalf("READ got %q", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	snap, err := srv.Snapshot(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Written != 5 || snap.Read != 1 || snap.Returned != 0 {
		t.Errorf("totals written/read/returned = %d/%d/%d, want 5/1/0", snap.Written, snap.Read, snap.Returned)
	}
	if snap.Pipes != 3 || snap.Chunks != 4 || snap.Stalled != 1 || snap.Clients != 3 {
		t.Errorf("stats %+v, want 3 pipes, 4 chunks, 1 held, 3 clients", snap.Stats)
	}
	deepCost := 3 * (400 + int64(len("deep")) + chunkOverhead)
	want := []PipeInfo{
		{Name: "deep", Chunks: 3, Bytes: deepCost, Writers: 1, HeldWrites: 1},
		{Name: "shallow", Chunks: 1, Bytes: 1 + int64(len("shallow")) + chunkOverhead, Writers: 1},
	}
	if fmt.Sprint(snap.Deepest) != fmt.Sprint(want) {
		t.Errorf("pipes (limit 2):\n got %+v\nwant %+v", snap.Deepest, want)
	}
	if len(snap.Conns) != 2 || snap.Conns[0].ID >= snap.Conns[1].ID || snap.Conns[0].Pipes != 3 || snap.Conns[0].Owed != 1 {
		t.Errorf("conns (limit 2, oldest first, w with 3 pipes and 1 held WRITE): %+v", snap.Conns)
	}
	if p := snap.Conns[0].Peer; p.UID != os.Geteuid() || p.PID != os.Getpid() {
		t.Errorf("peer of a connection from this process: %+v, want uid %d pid %d", p, os.Geteuid(), os.Getpid())
	}

	all, _ := srv.Snapshot(ctx, 10)
	if len(all.Deepest) != 3 || all.Deepest[2] != (PipeInfo{Name: "read", Writers: 1, Reader: true}) {
		t.Errorf("pipe read: %+v", all.Deepest)
	}
	srv.Close()
	if _, err := srv.Snapshot(ctx, 1); !errors.Is(err, owner.ErrStopped) {
		t.Errorf("Snapshot after Close: %v, want ErrStopped", err)
	}
}

// How long a scrape holds the owning goroutine with many pipes: the
// Snapshot that /metrics takes (the deepest 100 of 10,000 pipes) against
// the plain Stats totals as the baseline.
func BenchmarkSnapshot10kPipes(b *testing.B) { benchSnapshot(b, true) }
func BenchmarkStats10kPipes(b *testing.B)    { benchSnapshot(b, false) }

func benchSnapshot(b *testing.B, detailed bool) {
	srv, err := Start(Options{Name: fmt.Sprintf("bench-snapshot-%d", os.Getpid()), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	// Pipes are made by the owner itself: only their count and depths
	// matter here, not how chunks got there.
	owner.Do(srv.calls, srv.stopped, func() {
		for i := range 10000 {
			p := newPipe(fmt.Sprintf("pipe-%05d", i), nil)
			p.chunks, p.bytes = i*7919%10000, int64(i*64)
			srv.pipes[p.name] = p
		}
	})
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if detailed {
			if s, err := srv.Snapshot(ctx, 100); err != nil || len(s.Deepest) != 100 {
				b.Fatal(len(s.Deepest), err)
			}
		} else if srv.Stats().Pipes != 10000 {
			b.Fatal("pipes lost")
		}
	}
	b.StopTimer()
	owner.Do(srv.calls, srv.stopped, func() { clear(srv.pipes) }) // nothing to discard at Close
}

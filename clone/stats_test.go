package clone

import (
	"context"
	"errors"
	"testing"

	"github.com/zbroker/zbroker/internal/owner"
)

func TestSnapshotKeysSequenceAndConnections(t *testing.T) {
	s := startServer(t, Options{})
	c := connect(t, clientOpts(s, "/a/"))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for _, k := range []string{"/a/1", "/a/2", "/a/1"} {
		if err := c.SetWait(ctx, k, []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := s.Snapshot(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Keys != 2 || snap.Sequence != 3 || snap.Subscribers != 1 || snap.Publishers != 1 {
		t.Errorf("snapshot %+v, want 2 keys, sequence 3, 1 subscriber, 1 publisher", snap.Stats)
	}
	// The client subscribes to its subtree and to HUGZ.
	if len(snap.Conns) != 2 || snap.Conns[0].ID >= snap.Conns[1].ID {
		t.Fatalf("connections %+v", snap.Conns)
	}
	for _, ci := range snap.Conns {
		if ci.Role == "subscriber" && ci.Topics != 2 || ci.Role != "subscriber" && ci.Role != "publisher" {
			t.Errorf("connection %+v", ci)
		}
	}
	if one, _ := s.Snapshot(ctx, 1); len(one.Conns) != 1 || one.Conns[0].ID != snap.Conns[0].ID {
		t.Errorf("limit 1: %+v", one.Conns)
	}
	s.Close()
	if _, err := s.Snapshot(ctx, 1); !errors.Is(err, owner.ErrStopped) {
		t.Errorf("Snapshot after Close: %v, want ErrStopped", err)
	}
}

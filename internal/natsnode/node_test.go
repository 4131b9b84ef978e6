package natsnode_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/zbroker/zbroker/internal/natsnode"
	"github.com/zbroker/zbroker/internal/natsnode/natstest"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  natsnode.Config
		want string
	}{
		{natsnode.Config{Listen: "127.0.0.1:4222"}, "--data-dir"},
		{natsnode.Config{DataDir: "d"}, "--nats-listen"},
		{natsnode.Config{DataDir: "d", Listen: "nohost"}, "HOST:PORT"},
		{natsnode.Config{DataDir: "d", Listen: ":1", ClusterListen: ":2"}, "go together"},
		{natsnode.Config{DataDir: "d", Listen: ":1", ClusterListen: ":2", Routes: []string{"nats://h:1"}}, "nats-route://"},
		{natsnode.Config{URLs: []string{"nats://h:1"}, Listen: ":1"}, "excludes"},
		{natsnode.Config{URLs: []string{"h:1"}}, "nats://"},
		{natsnode.Config{DataDir: "d", Listen: ":1", Replicas: 7}, "1 to 5"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error mentioning %q", tc.cfg, err, tc.want)
		}
	}
	ok := natsnode.Config{DataDir: "d", Listen: "127.0.0.1:1", ClusterListen: "127.0.0.1:2", Routes: []string{"nats-route://127.0.0.1:2"}}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}

// A three-node cluster forms, picks three replicas, and a stream created
// through one node is served through another, also after that node's
// restart (same name, so the same Raft peer).
func TestThreeNodes(t *testing.T) {
	c := natstest.Start(t, 3)
	a, b := c.Nodes[0], c.Nodes[1]
	if a.Replicas != 3 {
		t.Fatalf("replicas %d, want 3", a.Replicas)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := a.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.JS.Publish(ctx, "t", []byte("x")); err != nil {
		t.Fatal(err)
	}
	name := c.Nodes[2].Name
	c.StopNode(2)
	if err := c.StartNode(2); err != nil {
		t.Fatal(err)
	}
	if c.Nodes[2].Name != name {
		t.Fatalf("restarted node is %q, was %q", c.Nodes[2].Name, name)
	}
	s, err := c.Nodes[2].JS.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream state %+v cluster %+v", info.State, info.Cluster)
	}
}

// A port already taken is a clear start error, not a hang.
func TestPortTaken(t *testing.T) {
	c := natstest.Start(t, 1)
	cfg := natsnode.Config{DataDir: t.TempDir(), Listen: strings.TrimPrefix(c.Nodes[0].ClientURL(), "nats://"), Wait: 5 * time.Second}
	_, err := natsnode.Start(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("got %v, want an address-in-use error", err)
	}
}

package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/natsnode/natstest"
)

// zbroker --nats on an existing NATS cluster (here three JetStream nodes in
// the test process): two zbrokers, each pointed at a different server,
// share a pipe and the Clone map, with three replicas.
func TestClusterExternalNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a NATS cluster and two brokers")
	}
	nc := natstest.Start(t, 3)
	brokers := make([]*node, 2)
	for i, srv := range []int{0, 2} {
		brokers[i] = &node{args: []string{"--nats", nc.Nodes[srv].ClientURL(), "--no-majordomo", uniqueName("ext")}}
		brokers[i].start(t)
		t.Cleanup(brokers[i].kill)
	}
	for _, b := range brokers {
		if !b.ready(t) {
			t.Fatalf("zbroker --nats did not start:\n%s", b.log)
		}
		if !strings.Contains(b.log.String(), "replicas=3") {
			t.Errorf("zbroker --nats on a 3-server cluster does not use 3 replicas:\n%s", b.log)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	w, r := pipeClient(t, brokers[0]), pipeClient(t, brokers[1])
	for _, chunk := range []string{"one", "two", "three"} {
		if err := w.Write(ctx, "p", []byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"one", "two", "three"} {
		got, err := r.Read(ctx, "p")
		if err != nil || string(got) != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}

	a, b := cloneClient(t, brokers[0]), cloneClient(t, brokers[1])
	if err := a.SetWait(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	for b.Seq() != a.Seq() {
		if ctx.Err() != nil {
			t.Fatalf("B's sequence %d never reached A's %d", b.Seq(), a.Seq())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v, _ := b.Get("k"); string(v) != "v" {
		t.Fatalf("B has %q", v)
	}
	// The streams are the external cluster's: zbroker made them there.
	info, err := nc.Nodes[1].JS.AccountInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Streams < 3 { // the pipe, the Clone bucket, the reader leases
		t.Fatalf("the NATS cluster holds %d streams", info.Streams)
	}
	for _, b := range brokers {
		b.stop(t)
	}
}

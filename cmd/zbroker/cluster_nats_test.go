package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/jsname"
	"github.com/zbroker/zbroker/internal/natsnode/natstest"
	"github.com/zbroker/zbroker/zpipes"
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

// SIGHUP with a new --pipe-limit gives the existing pipes' streams the new
// MaxBytes: WRITEs held by a full stream go through once it is raised.
func TestClusterReloadPipeLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker with an embedded NATS node")
	}
	cfg := filepath.Join(t.TempDir(), "zbroker.conf")
	// max-chunk below the limit: a stream holds at least one largest chunk.
	writeFile(t, cfg, "pipe-limit 64KiB\nmax-chunk 16KiB\n")
	var n *node
	for attempt := 0; ; attempt++ {
		n = &node{args: []string{"--config", cfg, "--data-dir", t.TempDir(),
			"--nats-listen", fmt.Sprintf("127.0.0.1:%d", natstest.FreePorts(t, 1)[0]),
			"--no-majordomo", "--no-clone", uniqueName("hup")}}
		n.start(t)
		if n.ready(t) {
			break
		}
		if attempt == 3 || !strings.Contains(n.log.String(), "address already in use") {
			t.Fatalf("zbroker did not start:\n%s", n.log)
		}
	}
	t.Cleanup(n.kill)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := pipeClient(t, n)
	// 8 chunks of 16 KiB: the stream (64 KiB) refuses the last ones.
	var pending []*zpipes.Pending
	for range 8 {
		pending = append(pending, w.WriteAsync("p", make([]byte, 16<<10)))
	}
	js := jsClient(t, n)
	maxBytes := func() int64 {
		s, err := js.Stream(ctx, jsname.PipeStream([]byte("p")))
		if err != nil {
			return 0
		}
		return s.CachedInfo().Config.MaxBytes
	}
	for maxBytes() != 64<<10 {
		if ctx.Err() != nil {
			t.Fatal("the pipe's stream never appeared with MaxBytes 64KiB")
		}
		time.Sleep(50 * time.Millisecond)
	}
	writeFile(t, cfg, "pipe-limit 1MiB\nmax-chunk 16KiB\n")
	n.cmd.Process.Signal(syscall.SIGHUP)
	for i, p := range pending {
		if _, err := p.Wait(ctx); err != nil {
			t.Fatalf("WRITE %d after raising the limit: %v\n%s", i, err, n.log)
		}
	}
	if got := maxBytes(); got != 1<<20 {
		t.Fatalf("stream MaxBytes %d after the reload, want 1MiB", got)
	}
	if !strings.Contains(n.log.String(), "pipes' streams limit updated") {
		t.Errorf("no log line for the streams' update:\n%s", n.log)
	}
	n.stop(t)
}

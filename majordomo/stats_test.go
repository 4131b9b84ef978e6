package majordomo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/owner"
)

func TestSnapshotServicesQueuesAndFailures(t *testing.T) {
	srv := startBroker(t, Options{RequestQueueLimit: 1})
	w := dialRaw(t, srv.Endpoint())
	w.send("MDPW02", "\x01", "busy")
	waitWorkers(t, srv, 1)
	c := dialRaw(t, srv.Endpoint()).optIn()
	c.send("MDPC02", "\x01", "busy", "1") // taken by the worker
	w.recvFrames()
	c.send("MDPC02", "\x01", "busy", "2") // queued: the worker is busy
	c.send("MDPC02", "\x01", "busy", "3") // 503: the queue holds 1
	if got := c.recv(); !strings.HasPrefix(got, "MDPC02|\x03|mmi.error|503|") {
		t.Fatalf("third request: %q", got)
	}
	c.send("MDPC02", "\x01", "busy") // no body: 400
	if got := c.recv(); !strings.HasPrefix(got, "MDPC02|\x03|mmi.error|400|") {
		t.Fatalf("request without body: %q", got)
	}
	c.send("MDPC02", "\x01", "nobody\xff", "x") // queued for a service with no worker

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	waitStats(t, srv, "two queued", func(st Stats) bool { return st.Queued == 2 })
	snap, err := srv.Snapshot(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Requests != 3 || snap.Workers != 1 || snap.Queued != 2 || snap.InFlight != 1 || snap.Peers != 2 {
		t.Errorf("snapshot %+v, want 3 requests, 1 worker, 2 queued, 1 in flight, 2 peers", snap)
	}
	if fmt.Sprint(snap.Failures) != "map[400:1 503:1]" {
		t.Errorf("failures %v", snap.Failures)
	}
	want := []ServiceInfo{
		{Name: "busy", Workers: 1, Queued: 1, InFlight: 1},
		{Name: "nobody\xff", Queued: 1},
	}
	if fmt.Sprint(snap.Services) != fmt.Sprint(want) {
		t.Errorf("services\n got %+v\nwant %+v", snap.Services, want)
	}
	if len(snap.Conns) != 2 || !snap.Conns[0].Worker || snap.Conns[0].Service != "busy" ||
		snap.Conns[1].Worker || snap.Conns[1].Pending != 3 {
		t.Errorf("connections (worker first, then the client with 3 pending): %+v", snap.Conns)
	}
	one, _ := srv.Snapshot(ctx, 1)
	if len(one.Services) != 1 || one.Services[0].Name != "busy" || len(one.Conns) != 1 {
		t.Errorf("limit 1: %+v", one)
	}
	srv.Close()
	if _, err := srv.Snapshot(ctx, 1); !errors.Is(err, owner.ErrStopped) {
		t.Errorf("Snapshot after Close: %v, want ErrStopped", err)
	}
}

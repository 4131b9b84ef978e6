package main

import (
	"context"
	"io"
	"testing"

	"github.com/zbroker/zbroker/zpipes"
)

// --ack drives the memory broker with acknowledging readers as well:
// every chunk read is acknowledged (the broker holds none unacknowledged
// and counts every one acknowledged), and the target compares
// them with plain readers.
func TestAckTarget(t *testing.T) {
	cfg := tinyConfig(t, "--sizes", "64", "--cases", "sweep", "--window", "1000", "--ack", "7")
	var snap zpipes.Snapshot
	acking := target{Name: ackTarget, Start: func(string) (instance, error) {
		ep := testEndpoint("ack")
		s, err := zpipes.Start(zpipes.Options{Endpoint: ep})
		if err != nil {
			return nil, err
		}
		return inProc{ep, func() {
			snap, _ = s.Snapshot(context.Background(), 10)
			s.Close()
		}}, nil
	}}
	rep, err := bench(context.Background(), cfg, []target{inProcTarget("relay"), inProcTarget("zpipes"), acking}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	checkSane(t, rep, 3)
	if snap.Acked == 0 || snap.Acked != snap.Read || snap.Unacked != 0 || snap.Chunks != 0 {
		t.Fatalf("acknowledging readers' broker at the end: read %d, acknowledged %d, %+v", snap.Read, snap.Acked, snap.Stats)
	}
	if r := rep.Results[2]; r.Server != ackTarget || r.VsMemory == nil {
		t.Fatalf("no comparison with plain readers: %+v", r)
	}
	found := false
	for _, c := range rep.Targets {
		found = found || c.Server == ackTarget
	}
	if !found {
		t.Errorf("no #15 target in %+v", rep.Targets)
	}
}

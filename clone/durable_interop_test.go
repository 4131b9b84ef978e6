package clone

import (
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/testsupport"
)

// brokerProc is the zbroker binary serving Clone with a data directory.
type brokerProc struct {
	cmd  *exec.Cmd
	out  *peer // reuses peer's locked buffer
	done chan error
}

func startBroker(t *testing.T, bin, dir, name string) *brokerProc {
	t.Helper()
	b := &brokerProc{out: &peer{}, done: make(chan error, 1)}
	b.cmd = exec.Command(bin, "--data-dir", dir, "--no-zpipes", "--no-majordomo", "--clone-heartbeat", "1s", name)
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	t.Cleanup(func() {
		b.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("zbroker output:\n%s", b.out.output())
		}
	})
	waitFor(t, "zbroker ready", func() bool { return strings.Contains(b.out.output(), "zbroker ready") })
	return b
}

// Keys set by a libzmq client survive a SIGKILL of the server: after the
// restart a snapshot has them, the sequence continues, and a value whose
// TTL ran out while the server was down is published as a delete.
func TestInteropDurableRestart(t *testing.T) {
	pythonZMQ(t)
	bin := testsupport.BuildBroker(t)
	dir, name := t.TempDir(), uniqName(t)
	o := Options{Name: name}.WithDefaults()
	ep := Endpoints{o.SnapshotEndpoint, o.PublisherEndpoint, o.CollectorEndpoint}
	b := startBroker(t, bin, dir, name)
	set := startPeerAt(t, ep, "populate", "300", "/eph", "1.5").wait(t)[0]
	before := set["map"].(map[string]any)
	seq := uint64(set["seq"].(float64))
	if len(before) != 301 || seq != 301 {
		t.Fatalf("before the crash: %d keys at seq %d, want 301 at 301", len(before), seq)
	}
	b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.done
	time.Sleep(1600 * time.Millisecond) // /eph expires while the server is down
	b = startBroker(t, bin, dir, name)
	lines := startPeerAt(t, ep, "watch", "/eph", "10").wait(t)
	snap := lines[0]
	after := snap["map"].(map[string]any)
	snapSeq := uint64(snap["seq"].(float64))
	for i := range 300 {
		k := fmt.Sprintf("/p/%d", i)
		if after[k] != fmt.Sprint(i) {
			t.Fatalf("after the restart %s = %v, want %d", k, after[k], i)
		}
	}
	last := lines[len(lines)-1]
	switch {
	case snapSeq == seq && after["/eph"] == "eph":
		// The snapshot came before the expired value's delete.
		if last["key"] != "/eph" || last["body"] != "" || uint64(last["seq"].(float64)) != seq+1 {
			t.Fatalf("after the snapshot at %d: %v, want the delete of /eph as %d", snapSeq, lines[1:], seq+1)
		}
	case snapSeq == seq+1 && after["/eph"] == nil:
		// The delete came first; the snapshot shows it.
	default:
		t.Fatalf("snapshot after the restart: seq %d (before: %d), /eph=%v; updates %v", snapSeq, seq, after["/eph"], lines[1:])
	}
	if !strings.Contains(b.out.output(), "expired_while_down=1") {
		t.Fatalf("the log does not report the expired value:\n%s", b.out.output())
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-b.done; err != nil {
		t.Fatalf("zbroker on TERM: %v", err)
	}
}

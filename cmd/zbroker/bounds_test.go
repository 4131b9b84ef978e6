package main

// The bounds of issue #10 measured on the real binary: a broker run as a
// subprocess (not race-instrumented, so its RSS means something) is
// attacked by many raw peers while a libzmq client keeps using it.

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/interop"
	"github.com/zbroker/zbroker/internal/testsupport"
	"github.com/zbroker/zbroker/zpipes"
)

const boundsTimeout = 3 * time.Second // --message-timeout in these tests

type brokerProc struct {
	cmd *exec.Cmd
	log *syncBuffer
}

func startBrokerProc(t *testing.T, bin, name string, args ...string) *brokerProc {
	t.Helper()
	log := &syncBuffer{}
	cmd := exec.Command(bin, append(args, name)...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("broker log (tail):\n%s", tail(log.String(), 3000))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(log.String(), "zbroker ready") {
		if time.Now().After(deadline) {
			t.Fatalf("broker not ready:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &brokerProc{cmd: cmd, log: log}
}

func tail(s string, n int) string { return s[max(0, len(s)-n):] }

// status reads a field of /proc/PID/status in KiB.
func (b *brokerProc) status(t *testing.T, field string) int {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(b.cmd.Process.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kib, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return kib
		}
	}
	t.Fatalf("no %s in /proc/PID/status", field)
	return 0
}

// pyClient uses a pipe through libzmq until stdin closes: WRITE then
// READ, each answer awaited at most 10 s. It prints "ok N" (round trips)
// or "FAIL why".
const pyClient = `
import sys, threading, time, zmq
ctx = zmq.Context()
s = ctx.socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 0)
s.connect(sys.argv[1])
stop = threading.Event()
def watch():
    sys.stdin.read()
    stop.set()
threading.Thread(target=watch, daemon=True).start()
def ask(*frames):
    s.send_multipart(list(frames))
    if not s.poll(10000):
        print("FAIL no answer to", frames[0], flush=True)
        sys.exit(1)
    return s.recv_multipart()
if ask(b"OPEN", b"p") != [b"OK"]:
    print("FAIL open", flush=True); sys.exit(1)
n = 0
while not stop.is_set():
    if ask(b"WRITE", b"p", b"ping %d" % n) != [b"OK"] or ask(b"READ", b"p") != [b"ping %d" % n]:
        print("FAIL round trip", n, flush=True); sys.exit(1)
    n += 1
    time.sleep(0.05)
print("ok", n, flush=True)
`

// servedThroughout runs pyClient against the broker; the returned
// function stops it and fails the test unless every request was answered.
func servedThroughout(t *testing.T, name string) func() {
	t.Helper()
	cmd := exec.Command(interop.Python(t), "-c", pyClient, zpipes.Endpoint(name))
	stdin, _ := cmd.StdinPipe()
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		stdin.Close()
		err := cmd.Wait()
		if err != nil || !strings.HasPrefix(out.String(), "ok ") || out.String() == "ok 0\n" {
			t.Fatalf("libzmq client not served throughout: %v: %s", err, out.String())
		}
		t.Logf("libzmq client: %s", strings.TrimSpace(out.String()))
	}
}

func dialRaw(t *testing.T, name string) net.Conn {
	t.Helper()
	nc, err := net.Dial("unix", strings.TrimPrefix(zpipes.Endpoint(name), "ipc://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// handshakeRaw completes a NULL ZMTP 3.1 handshake as a DEALER.
func handshakeRaw(t *testing.T, nc net.Conn) *bufio.Reader {
	g := make([]byte, 64)
	g[0], g[9], g[10], g[11] = 0xFF, 0x7F, 3, 1
	copy(g[12:], "NULL")
	ready := []byte{0x04, 0, 5, 'R', 'E', 'A', 'D', 'Y', 11}
	ready = append(ready, "Socket-Type"...)
	ready = binary.BigEndian.AppendUint32(ready, 6)
	ready = append(ready, "DEALER"...)
	ready[1] = byte(len(ready) - 2)
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	defer nc.SetDeadline(time.Time{})
	if _, err := nc.Write(append(g, ready...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(nc, 512)
	// The broker's greeting, then its READY (short frame).
	if _, err := io.ReadFull(br, make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(br, hdr); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(br, make([]byte, hdr[1])); err != nil {
		t.Fatal(err)
	}
	return br
}

// waitClosed fails unless the broker closes every conn within d.
func waitClosed(t *testing.T, conns []net.Conn, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for i, nc := range conns {
		nc.SetReadDeadline(deadline)
		if _, err := io.Copy(io.Discard, nc); err != nil && !isReset(err) {
			t.Fatalf("peer %d of %d not dropped within %v: %v", i, len(conns), d, err)
		}
	}
}

func isReset(err error) bool {
	return err == syscall.ECONNRESET || strings.Contains(err.Error(), "reset")
}

func needFDs(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	if lim.Cur < n {
		lim.Cur = min(n, lim.Max)
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if lim.Cur < n {
		t.Skipf("skipped: needs %d file descriptors, RLIMIT_NOFILE hard limit is %d", n, lim.Max)
	}
}

// growth runs attack against a fresh broker and returns how much its peak
// RSS grew over its RSS before the attack, in MiB.
func growth(t *testing.T, bin string, attack func(name string)) int {
	name := uniqueName("bounds")
	b := startBrokerProc(t, bin, name, "--message-timeout", boundsTimeout.String())
	stop := servedThroughout(t, name)
	time.Sleep(300 * time.Millisecond) // the client is up and the broker warm
	before := b.status(t, "VmRSS")
	attack(name)
	peak := b.status(t, "VmHWM")
	stop()
	return (peak - before) >> 10
}

const maxGrowthMiB = 64

// TestBounds: each attack on a fresh broker grows its RSS by at most
// maxGrowthMiB, stalled peers are dropped, and a libzmq client is served
// throughout.
func TestBounds(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: runs a broker under thousands of peers")
	}
	needFDs(t, 4500)
	bin := testsupport.BuildBroker(t)
	t.Run("PartialFrames", func(t *testing.T) { boundsPartialFrames(t, bin) })
	t.Run("HalfGreetings", func(t *testing.T) { boundsHalfGreetings(t, bin) })
	t.Run("IdlePeers", func(t *testing.T) { boundsIdlePeers(t, bin) })
}

func boundsPartialFrames(t *testing.T, bin string) {
	g := growth(t, bin, func(name string) {
		const peers, size, sent = 300, 1 << 20, 900 << 10
		conns := make([]net.Conn, peers)
		var wg sync.WaitGroup
		for i := range conns {
			conns[i] = dialRaw(t, name)
			handshakeRaw(t, conns[i])
			wire := binary.BigEndian.AppendUint64([]byte{0x02}, size)
			wire = append(wire, make([]byte, sent)...)
			wg.Add(1)
			go func() { // a peer we stop reading blocks here
				defer wg.Done()
				conns[i].Write(wire)
			}()
		}
		waitClosed(t, conns, boundsTimeout+20*time.Second)
		wg.Wait()
	})
	t.Logf("300 peers holding 900 KiB of a 1 MiB frame: RSS grew %d MiB", g)
	if g > maxGrowthMiB {
		t.Fatalf("RSS grew %d MiB, want at most %d", g, maxGrowthMiB)
	}
}

func boundsHalfGreetings(t *testing.T, bin string) {
	g := growth(t, bin, func(name string) {
		conns := make([]net.Conn, 2000)
		for i := range conns {
			conns[i] = dialRaw(t, name)
			conns[i].Write([]byte{0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 3}) // signature, no more
		}
		waitClosed(t, conns, boundsTimeout+20*time.Second)
	})
	t.Logf("2,000 half-finished greetings: RSS grew %d MiB", g)
	if g > maxGrowthMiB {
		t.Fatalf("RSS grew %d MiB, want at most %d", g, maxGrowthMiB)
	}
}

func boundsIdlePeers(t *testing.T, bin string) {
	g := growth(t, bin, func(name string) {
		for range 2000 {
			handshakeRaw(t, dialRaw(t, name))
		}
		time.Sleep(500 * time.Millisecond) // let the broker settle
	})
	t.Logf("2,000 idle handshaken peers: RSS grew %d MiB", g)
	if g > maxGrowthMiB {
		t.Fatalf("RSS grew %d MiB, want at most %d", g, maxGrowthMiB)
	}
}

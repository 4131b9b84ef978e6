package zpipes_test

// Durability against real libzmq peers and the zbroker binary: the broker
// is SIGKILLed while pyzmq writers pipeline and a reader reads, and
// restarted on the same --data-dir.

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/zbroker/zbroker/internal/testsupport"
	"github.com/zbroker/zbroker/zmtp"
	"github.com/zbroker/zbroker/zpipes"
)

// chunkIndex parses a chunk of peer.py's writes: "w<k>-%08d...".
func chunkIndex(t *testing.T, c string) (writer, index int) {
	t.Helper()
	k, rest, ok := strings.Cut(c, "-")
	if !ok || len(k) < 2 || k[0] != 'w' || len(rest) < 8 {
		t.Fatalf("unexpected chunk %q", c)
	}
	w, err1 := strconv.Atoi(k[1:])
	i, err2 := strconv.Atoi(rest[:8])
	if err1 != nil || err2 != nil {
		t.Fatalf("unexpected chunk %q", c)
	}
	return w, i
}

func startDurable(t *testing.T, bin, dir, name string, extra ...string) *ixBrokerProc {
	t.Helper()
	args := append([]string{"--data-dir", dir, "--no-majordomo", "--no-clone"}, extra...)
	b := ixStartBinary(t, bin, append(args, name)...)
	b.waitStarted()
	return b
}

func (b *ixBrokerProc) sigkill() {
	b.t.Helper()
	b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.done
}

// Every acknowledged chunk survives a SIGKILL of the broker, each writer's
// chunks stay in order, and only chunks that were out to the reader at the
// crash (no more than its window) are delivered again.
func TestInteropDurableCrash(t *testing.T) {
	bin := testsupport.BuildBroker(t)
	const (
		writers      = 4
		writerWindow = 200
		readerWindow = 200
		perWriter    = 200000
		rounds       = 3
	)
	for round := range rounds {
		t.Run(fmt.Sprint("round", round), func(t *testing.T) {
			dir := t.TempDir()
			name := ixName("crash")
			ep := zpipes.Endpoint(name)
			fsync := []string{"interval", "always", "never"}[round%3]
			b := startDurable(t, bin, dir, name, "--fsync", fsync)
			var ws []*ixPeer
			for i := range writers {
				w := ixStartPeer(t, ep, "DEALER", fmt.Sprint("writer", i))
				w.expect(ok, "OPEN", "crash")
				w.writes("crash", perWriter, fmt.Sprintf("w%d-", i), 64, writerWindow)
				ws = append(ws, w)
			}
			r := ixStartPeer(t, ep, "DEALER", "reader")
			r.expect(ok, "OPEN", "crash")
			r.reads("crash", writers*perWriter, readerWindow)
			time.Sleep(time.Duration(300+mrand.IntN(700)) * time.Millisecond)
			b.sigkill()

			acked := make([]int, writers)
			for i, w := range ws {
				for _, m := range w.kill() {
					if len(m) != 1 || m[0] != zpipes.ReplyOK {
						t.Fatalf("writer %d got %s", i, describe(m))
					}
					acked[i]++
				}
			}
			// What the broker wrote into the reader's socket is delivered:
			// let the reader take all of it before it goes.
			var before []string
			for m := r.recvWithin(time.Second); m != nil; m = r.recvWithin(time.Second) {
				before = append(before, m[0])
			}
			for _, m := range r.kill() {
				before = append(before, m[0])
			}
			// Before the crash: each writer's chunks in order, from 0.
			next := make([]int, writers)
			posOf := map[string]int{}
			for p, c := range before {
				w, i := chunkIndex(t, c)
				if i != next[w] {
					t.Fatalf("before the crash writer %d's chunk %d came when %d was due", w, i, next[w])
				}
				next[w]++
				posOf[c[:12]] = p
			}

			b2 := startDurable(t, bin, dir, name, "--fsync", fsync)
			r2 := ixStartPeer(t, ep, "DEALER", "reader2")
			r2.expect(ok, "OPEN", "crash")
			r2.reads("crash", writers*perWriter, readerWindow)
			var after []string
			for {
				m := r2.recvWithin(2 * time.Second)
				if m == nil {
					break
				}
				after = append(after, m[0])
			}
			r2.kill()
			first := make([]int, writers)
			seen := make([]bool, writers)
			last := make([]int, writers)
			redelivered := 0
			for _, c := range after {
				w, i := chunkIndex(t, c)
				if !seen[w] {
					seen[w], first[w], last[w] = true, i, i-1
				}
				if i != last[w]+1 {
					t.Fatalf("after the restart writer %d's chunk %d came after %d", w, i, last[w])
				}
				last[w] = i
				if i < next[w] {
					redelivered++
					if p := posOf[c[:12]]; p < len(before)-readerWindow {
						t.Fatalf("chunk %q delivered again, though it was %d chunks before the crash (window %d)", c[:12], len(before)-p, readerWindow)
					}
				}
			}
			for w := range writers {
				have := next[w] // everything below is read, before or after
				if seen[w] {
					if first[w] > next[w] {
						t.Fatalf("writer %d: chunks %d..%d lost (read %d before the crash, resumed at %d)", w, next[w], first[w]-1, next[w], first[w])
					}
					have = max(have, last[w]+1)
				}
				if have < acked[w] {
					t.Fatalf("writer %d: %d chunks acknowledged, only %d recovered", w, acked[w], have)
				}
			}
			total := 0
			for _, a := range acked {
				total += a
			}
			if total < 1000 || len(after) == 0 {
				t.Fatalf("only %d chunks acknowledged, %d read after: the test did not exercise recovery", total, len(after))
			}
			t.Logf("fsync %s: %d acknowledged, %d read before the crash, %d after, %d delivered again",
				fsync, total, len(before), len(after), redelivered)
			if redelivered > 0 && !strings.Contains(b2.stderr.String(), "delivered again") {
				t.Errorf("%d chunks delivered again, and the log does not say so", redelivered)
			}
			b2.cmd.Process.Signal(syscall.SIGTERM)
			if code := b2.exitCode(10 * time.Second); code != 0 {
				t.Fatalf("zbroker exited %d on TERM", code)
			}
		})
	}
}

// A second broker on the same data directory exits 1 and says why.
func TestInteropDataDirLocked(t *testing.T) {
	bin := testsupport.BuildBroker(t)
	dir := t.TempDir()
	startDurable(t, bin, dir, ixName("lock1"))
	b := ixStartBinary(t, bin, "--data-dir", dir, "--no-majordomo", "--no-clone", ixName("lock2"))
	if code := b.exitCode(10 * time.Second); code != 1 {
		t.Fatalf("second broker exited %d, want 1", code)
	}
	if out := b.stderr.String(); !strings.Contains(out, "in use by another broker") || !strings.Contains(out, strconv.Itoa(os.Getpid())) && !strings.Contains(out, "pid") {
		t.Fatalf("second broker said: %s", out)
	}
}

// setFileSizeLimit sets RLIMIT_FSIZE of process pid (prlimit(2)).
func setFileSizeLimit(t *testing.T, pid int, limit uint64) {
	t.Helper()
	lim := [2]uint64{limit, ^uint64(0)} // soft, hard (unlimited)
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), uintptr(syscall.RLIMIT_FSIZE),
		uintptr(unsafe.Pointer(&lim)), 0, 0, 0); e != 0 {
		t.Fatalf("prlimit(%d, RLIMIT_FSIZE): %v", pid, e)
	}
}

// Disk full (a file size limit on the broker): WRITEs past it get no OK,
// the broker says so once, reads go on, and when space returns every
// WRITE is acknowledged and every chunk read in order.
func TestInteropDurableDiskFull(t *testing.T) {
	bin := testsupport.BuildBroker(t)
	dir, name := t.TempDir(), ixName("full")
	b := startDurable(t, bin, dir, name, "--fsync", "always")
	setFileSizeLimit(t, b.cmd.Process.Pid, 1<<20)
	ep := zpipes.Endpoint(name)
	const n, size = 100, 64 << 10
	w := ixStartPeer(t, ep, "DEALER", "writer")
	w.expect(ok, "OPEN", "full")
	w.writes("full", n, "F", size, n)
	acked := 0
	for w.recvWithin(2*time.Second) != nil {
		acked++
	}
	if acked >= 16 || acked == 0 {
		t.Fatalf("%d of %d WRITEs of 64 KiB acknowledged with a 1 MiB file size limit", acked, n)
	}
	ixWait(t, 10*time.Second, "the write error logged", func() bool {
		return strings.Contains(b.stderr.String(), "log write failed")
	})
	// Reads go on: the reader gets everything the broker holds, in order.
	r := ixStartPeer(t, ep, "DEALER", "reader")
	r.expect(ok, "OPEN", "full")
	r.reads("full", n, 10)
	checkSeq(t, "chunks read while the disk is full", r.collect(n), "F", 0)
	w.quiet(500 * time.Millisecond)
	setFileSizeLimit(t, b.cmd.Process.Pid, ^uint64(0))
	w.expectOKs(n - acked)
	ixWait(t, 10*time.Second, "the recovery logged", func() bool {
		return strings.Contains(b.stderr.String(), "log writes succeed again")
	})
	if c := strings.Count(b.stderr.String(), "log write failed"); c != 1 {
		t.Fatalf("the write error was logged %d times, want once per episode", c)
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	if code := b.exitCode(10 * time.Second); code != 0 {
		t.Fatalf("zbroker exited %d on TERM", code)
	}
}

// A pipe holding 2 GiB of chunks lives on disk: the broker's peak RSS
// stays under 256 MiB while a libzmq writer fills it and while it is all
// read back, in order.
func TestInteropDurableBigPipe(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 2 GiB")
	}
	bin := testsupport.BuildBroker(t)
	dir, name := t.TempDir(), ixName("big")
	b := startDurable(t, bin, dir, name, "--fsync", "never", "--pipe-limit", "3GiB", "--total-limit", "3GiB")
	ep := zpipes.Endpoint(name)
	const n, size = 2048, 1 << 20
	w := ixStartPeer(t, ep, "DEALER", "writer")
	w.expect(ok, "OPEN", "big")
	w.writes("big", n, "B", size, 16)
	w.expectOKs(n)
	w.quit()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, err := zmtp.Dial(ctx, ep, zmtp.Options{SocketType: "DEALER"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Send([][]byte{[]byte("OPEN"), []byte("big")})
	if f, err := r.Recv(); err != nil || string(f[0]) != "OK" {
		t.Fatalf("OPEN: %q %v", f, err)
	}
	const window = 8
	for range window {
		r.Send([][]byte{[]byte("READ"), []byte("big")})
	}
	for i := range n {
		f, err := r.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if want := seq("B", i); len(f) != 1 || len(f[0]) != size || string(f[0][:len(want)]) != want {
			t.Fatalf("chunk %d: %d frames, %s", i, len(f), describe([]string{string(f[0][:min(len(f[0]), 20)])}))
		}
		if i+window < n {
			r.Send([][]byte{[]byte("READ"), []byte("big")})
		}
	}
	peak := procStatusKiB(t, b.cmd.Process.Pid, "VmHWM")
	t.Logf("2 GiB written and read back; broker peak RSS %d MiB", peak>>10)
	if peak > 256<<10 {
		t.Fatalf("broker peak RSS %d MiB, want under 256 MiB", peak>>10)
	}
}

package zmtp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"
)

// testMemory records charges and reports inKernel bytes as queued.
type testMemory struct {
	charged, allocs, inKernel int
	asked                     int       // calls of queued
	src                       io.Reader // the source, if bodies may be read from it directly
	err                       error
}

func (m *testMemory) charge(n int) error {
	m.charged += n
	m.allocs++
	return m.err
}

func (m *testMemory) source() io.Reader { return m.src }

func (m *testMemory) queued() int {
	m.asked++
	return m.inKernel
}

// The kernel is asked what has arrived (a syscall) only when the answer
// can change how much a body gets: not for a frame that fits in
// firstChunk or is mostly buffered already (issue 14's profiles at 4 KiB:
// 6% of the broker's CPU), but for a large one it is.
func TestFrameAsksKernelOnlyWhenItMatters(t *testing.T) {
	for _, c := range []struct {
		size, got int
		ask       bool
	}{{firstChunk, 100, false}, {64 << 10, 40 << 10, false}, {64 << 10, 100, true}, {1 << 20, 100, true}} {
		wire := appendFrameHeader(nil, 0, c.size)
		wire = append(wire, make([]byte, c.size)...)
		// The first got bytes of the body are buffered, the rest come
		// from a second read.
		r := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(wire[:9+c.got]), bytes.NewReader(wire[9+c.got:])), 64<<10)
		if _, err := r.Peek(9 + c.got); err != nil {
			t.Fatal(err)
		}
		mem := testMemory{inKernel: c.size - c.got}
		_, body, err := readFrameInto(r, 1<<30, nil, &mem)
		if err != nil || len(body) != c.size {
			t.Fatalf("%d of %d bytes buffered: %d bytes, %v", c.got, c.size, len(body), err)
		}
		if (mem.asked > 0) != c.ask {
			t.Errorf("%d of %d bytes buffered: asked the kernel %d times, want asked=%v", c.got, c.size, mem.asked, c.ask)
		}
	}
}

// A frame's body grows with the bytes that arrive (at most eight times
// them), not with the size its header announces; a frame whose bytes have
// all arrived gets its size in one allocation.
func TestFrameGrowsAsBytesArrive(t *testing.T) {
	for _, got := range []int{0, 100, 10 << 10, 300 << 10} {
		wire := binary.BigEndian.AppendUint64([]byte{flagLong}, 1<<20)
		wire = append(wire, make([]byte, got)...)
		var mem testMemory
		_, _, err := readFrameInto(reader(wire), 1<<30, nil, &mem)
		if err != io.ErrUnexpectedEOF {
			t.Fatalf("%d of 1 MiB: %v, want io.ErrUnexpectedEOF", got, err)
		}
		if limit := 8*(got+4096) + firstChunk; mem.charged > limit {
			t.Errorf("%d bytes of a 1 MiB frame arrived: %d charged, want at most %d", got, mem.charged, limit)
		}
	}
	// All arrived (the kernel holds the rest): one allocation.
	wire := binary.BigEndian.AppendUint64([]byte{flagLong}, 1<<20)
	wire = append(wire, make([]byte, 1<<20)...)
	mem := testMemory{inKernel: 1 << 20}
	if _, body, err := readFrameInto(reader(wire), 1<<30, nil, &mem); err != nil || len(body) != 1<<20 || mem.allocs != 1 || mem.charged != 1<<20 {
		t.Fatalf("arrived frame: %d bytes, %v; %d allocations charging %d", len(body), err, mem.allocs, mem.charged)
	}
	// A refused charge ends the read.
	stop := errors.New("no room")
	if _, _, err := readFrameInto(reader(wire), 1<<30, nil, &testMemory{err: stop}); err != stop {
		t.Fatalf("refused charge: %v", err)
	}
}

// sendPartial handshakes and sends `have` bytes of a one-frame message
// announced as `size` bytes.
func sendPartial(t *testing.T, endpoint string, size, have int) *rawPeer {
	t.Helper()
	p := rawDial(t, endpoint)
	p.handshake(1, "DEALER")
	wire := appendFrameHeader(nil, 0, size)
	// In the background: a peer we stop reading blocks in Write.
	go p.nc.Write(append(wire, make([]byte, have)...))
	return p
}

// Peers holding partial messages hold at most the receive budget (one
// of them may go past it) and are dropped at the message deadline; a
// whole message larger than the budget still gets through.
func TestReceiveBudgetAndMessageTimeout(t *testing.T) {
	const budget = 1 << 20
	g := NewGuard(GuardConfig{ReceiveBudget: budget, MessageTimeout: 1500 * time.Millisecond, Logger: quietLogger})
	ts := startServer(t, abstractEndpoint(t), Options{Guard: g}, func(Event) {})
	var peers []*rawPeer
	for range 8 {
		peers = append(peers, sendPartial(t, ts.endpoint(), 1<<20, 600<<10))
		ts.next(Connected)
	}
	start := time.Now()
	waitFor(t, testTimeout, "budget in use", func() bool {
		g.budget.mu.Lock()
		defer g.budget.mu.Unlock()
		return g.budget.used >= budget
	})
	g.budget.mu.Lock()
	used := g.budget.used
	g.budget.mu.Unlock()
	// Within the budget, plus what one connection past it may hold.
	if used > budget+(2<<20) {
		t.Fatalf("8 peers holding 600 KiB each: %d bytes charged, budget %d", used, budget)
	}
	for range peers {
		ev := ts.next(Disconnected)
		if !errors.Is(ev.Err, ErrMessageTimeout) {
			t.Fatalf("stalled peer dropped with %v, want ErrMessageTimeout", ev.Err)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("stalled peers dropped after %v", d)
	}
	waitFor(t, testTimeout, "budget given back", func() bool {
		g.budget.mu.Lock()
		defer g.budget.mu.Unlock()
		return g.budget.used == 0
	})

	// 3 MiB in one message, three times the budget: served.
	ts2 := startServer(t, abstractEndpoint(t), Options{Guard: g}, nil)
	c := dialT(t, ts2.endpoint(), Options{})
	ts2.next(Connected)
	big := patterned(3<<20, 7)
	c.Send([][]byte{big})
	if got := mustRecv(t, c); !equalFrames(got, [][]byte{big}) {
		t.Fatalf("3 MiB echo: %s", describe(got))
	}
}

// IdleTimeout drops a peer that sends nothing between messages; one that
// keeps talking stays.
func TestIdleTimeout(t *testing.T) {
	g := NewGuard(GuardConfig{IdleTimeout: 300 * time.Millisecond, Logger: quietLogger})
	ts := startServer(t, abstractEndpoint(t), Options{Guard: g}, nil)
	quiet := rawDial(t, ts.endpoint())
	quiet.handshake(1, "DEALER")
	quietConn := ts.next(Connected).Conn
	busy := dialT(t, ts.endpoint(), Options{})
	ts.next(Connected)
	for range 10 {
		busy.Send([][]byte{[]byte("tick")})
		mustRecv(t, busy)
		time.Sleep(100 * time.Millisecond)
	}
	ev := ts.next(Disconnected)
	if ev.Conn != quietConn || !errors.Is(ev.Err, ErrIdleTimeout) {
		t.Fatalf("dropped %v with %v, want the idle peer with ErrIdleTimeout", ev.Conn.Peer(), ev.Err)
	}
	ts.quiet(0)
}

// Handshaken peers waiting for their next message hold no read buffer.
func TestIdlePeersHoldNoBuffer(t *testing.T) {
	ts := startServer(t, abstractEndpoint(t), Options{}, nil)
	warm := dialT(t, ts.endpoint(), Options{})
	ts.next(Connected)
	warm.Send([][]byte{[]byte("x")})
	mustRecv(t, warm)
	before := heapAlloc()
	const n = 200
	for range n {
		p := rawDial(t, ts.endpoint())
		p.handshake(1, "DEALER")
		p.send([]byte("one message, then silence"))
		if _, _, err := p.recv(); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		ts.next(Connected)
	}
	per := (int64(heapAlloc()) - int64(before)) / n
	// Our share of each connection (structs, channels, the peer side's
	// buffers in this process) without a 64 KiB buffer.
	if per > 24<<10 {
		t.Fatalf("%d idle peers: %d bytes of heap each", n, per)
	}
	t.Logf("%d bytes of heap per idle connection (both ends)", per)
}

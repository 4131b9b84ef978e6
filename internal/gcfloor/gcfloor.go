// Package gcfloor keeps the garbage collector from running every few MiB
// of allocation while the live heap is small.
//
// A broker's live heap is often a few MiB while it allocates hundreds of
// MB/s (every message read becomes garbage once handled or written on).
// With GOGC=100 the collector then runs whenever the heap doubles from
// that small base, 4 MiB at the least: about a hundred cycles a second,
// a third of the CPU per 64-byte chunk (issue 14's profiles: write
// barriers, sweeping, zeroing new spans). A floor under the heap goal
// makes those cycles rarer for a bounded amount of memory; once the live
// heap is over half the floor, GOGC is what it was and the floor costs
// nothing.
package gcfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// heapMinimum is the runtime's least heap goal at GOGC=100; it scales
// with GOGC, so GOGC over floor/heapMinimum×100 would put the goal past
// the floor.
const heapMinimum = 4 << 20

// For is the floor for a process whose memory limit is limit (≤ 0: none):
// 32 MiB, or an eighth of the limit if that is less, so that the floor
// never brings the heap near the limit.
func For(limit int64) int64 {
	const floor = 32 << 20
	if limit > 0 {
		return min(floor, limit/8)
	}
	return floor
}

var (
	once    sync.Once
	started bool // under once
)

// Start keeps the heap goal at floor bytes or more from the next cycle
// on: after each collection GOGC becomes what makes live heap × (1 +
// GOGC/100) reach floor, never less than GOGC was at the start. It does
// nothing if GOGC is set in the environment (the operator's choice
// wins), if floor ≤ 0, or if called before (one floor per process). A
// memory limit (GOMEMLIMIT, debug.SetMemoryLimit) still makes the
// collector run sooner when needed.
func Start(floor int64) {
	if floor <= 0 || os.Getenv("GOGC") != "" {
		return
	}
	once.Do(func() {
		base := debug.SetGCPercent(100)
		debug.SetGCPercent(base)
		if base < 0 {
			return // collection is off
		}
		started = true
		t := &tuner{floor: uint64(floor), base: base, set: base, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
		t.arm()
	})
}

type tuner struct {
	floor     uint64
	base, set int
	sample    []metrics.Sample
}

// arm runs tune after the next collection: a cleanup runs once the
// object it watches is found unreachable, so each cycle re-arms it.
func (t *tuner) arm() {
	runtime.AddCleanup(new([16]byte), func(t *tuner) { t.tune(); t.arm() }, t)
}

func (t *tuner) tune() {
	metrics.Read(t.sample)
	p := percentFor(t.sample[0].Value.Uint64(), t.floor, t.base)
	if p != t.set {
		t.set = p
		debug.SetGCPercent(p)
	}
}

// percentFor is the GOGC that puts the heap goal of a live heap at floor,
// at least base.
func percentFor(live, floor uint64, base int) int {
	limit := floor * 100 / heapMinimum
	if live >= floor {
		return base
	}
	p := limit
	if live > 0 {
		p = min(p, (floor-live)*100/live)
	}
	return max(base, int(p))
}

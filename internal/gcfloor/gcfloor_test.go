package gcfloor

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, floor uint64
		base, want  int
	}{
		{2 * mib, 32 * mib, 100, 800}, // the runtime's 4 MiB minimum scales to 32 MiB
		{4 * mib, 32 * mib, 100, 700},
		{16 * mib, 32 * mib, 100, 100},
		{20 * mib, 32 * mib, 100, 100},
		{64 * mib, 32 * mib, 100, 100},
		{8 * mib, 32 * mib, 400, 400},
		{1, 32 * mib, 100, 800},
		{0, 32 * mib, 100, 800},
	} {
		if got := percentFor(c.live, c.floor, c.base); got != c.want {
			t.Errorf("percentFor(%d, %d, %d) = %d, want %d", c.live, c.floor, c.base, got, c.want)
		}
	}
}

func TestFor(t *testing.T) {
	for _, c := range []struct{ limit, want int64 }{
		{0, 32 << 20}, {-1, 32 << 20}, {1 << 30, 32 << 20}, {128 << 20, 16 << 20},
	} {
		if got := For(c.limit); got != c.want {
			t.Errorf("For(%d) = %d, want %d", c.limit, got, c.want)
		}
	}
}

var sink []byte

// TestFloorMakesCyclesRarer: with a small live heap, 1 GiB of garbage
// takes far fewer collections once a 64 MiB floor is in place than with
// the runtime's 4 MiB minimum goal.
func TestFloorMakesCyclesRarer(t *testing.T) {
	// A floor is per process: the first run of this test sets it.
	if started || debug.SetGCPercent(100) != 100 {
		t.Skip("the floor was set before, or GOGC is not 100, in this test process")
	}
	cycles := func() uint32 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		start := ms.NumGC
		for range 16384 {
			sink = make([]byte, 64<<10)
		}
		runtime.ReadMemStats(&ms)
		return ms.NumGC - start
	}
	before := cycles()
	t.Setenv("GOGC", "") // Start reads it: unset for this test
	Start(64 << 20)
	runtime.GC() // the floor applies from the cycle after this one
	after := cycles()
	t.Logf("collections for 1 GiB of garbage: %d without the floor, %d with", before, after)
	if after*2 > before {
		t.Fatalf("%d collections with a 64 MiB floor, %d without: want under half", after, before)
	}
}

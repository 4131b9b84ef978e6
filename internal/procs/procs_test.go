package procs

import (
	"math"
	"os"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var (
	light = Sample{CPU: 0.6, Wait: 0.01} // one chunk in flight
	busy  = Sample{CPU: 0.7, Wait: 0.3}  // pipelined: goroutines queue for the one P
)

// feed gives g the samples and returns its answer to each.
func feed(g *Governor, samples ...Sample) []int {
	var got []int
	for _, s := range samples {
		got = append(got, g.Next(s))
	}
	return got
}

func repeat(s Sample, n int) []Sample {
	out := make([]Sample, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestStartsOnOneAndStaysWhileLight(t *testing.T) {
	g := NewGovernor(DefaultPolicy(4))
	for i, n := range feed(g, repeat(light, 1000)...) {
		if n != 1 {
			t.Fatalf("period %d of a light load: %d Ps, want 1", i, n)
		}
	}
}

// On one P, the first period over a bound gives the Ps back; a period
// at the bounds does not, nor late waits while the process uses little
// CPU (its thread was not running), unless many goroutines wait.
func TestUpAtOnce(t *testing.T) {
	p := DefaultPolicy(2)
	for _, c := range []struct {
		s    Sample
		want int
	}{
		{Sample{CPU: p.UpCPU, Wait: p.UpWait}, 1},
		{Sample{CPU: p.UpCPU + 0.01}, 2},
		{Sample{CPU: p.UpWaitCPU + 0.01, Wait: p.UpWait + 0.001}, 2},
		{Sample{CPU: p.UpWaitCPU, Wait: p.UpWait + 0.001}, 1},
		{Sample{CPU: 0.2, Wait: p.UpWaitAlone}, 1},
		{Sample{CPU: 0.2, Wait: p.UpWaitAlone + 0.01}, 2},
		{Sample{CPU: 1.5, Wait: 3}, 2},
	} {
		if got := NewGovernor(p).Next(c.s); got != c.want {
			t.Errorf("one P, sample %+v: %d Ps, want %d", c.s, got, c.want)
		}
	}
}

// With Max Ps it takes Calm calm periods in a row to go to one; a busy
// period in between starts the count again.
func TestDownAfterCalm(t *testing.T) {
	p := DefaultPolicy(2)
	g := NewGovernor(p)
	if n := g.Next(busy); n != 2 {
		t.Fatalf("busy on one P: %d Ps, want 2", n)
	}
	calm := Sample{CPU: p.DownCPU, Wait: p.DownWait}
	got := feed(g, repeat(calm, p.Calm-1)...)
	got = append(got, feed(g, Sample{CPU: p.DownCPU + 0.01, Wait: 0})...)
	got = append(got, feed(g, repeat(calm, p.Calm-1)...)...)
	got = append(got, feed(g, Sample{CPU: 0, Wait: p.DownWait + 0.001})...)
	got = append(got, feed(g, repeat(calm, p.Calm-1)...)...)
	for i, n := range got {
		if n != 2 {
			t.Fatalf("period %d: %d Ps before %d calm periods in a row, want 2", i, n, p.Calm)
		}
	}
	if n := g.Next(calm); n != 1 {
		t.Fatalf("after %d calm periods: %d Ps, want 1", p.Calm, n)
	}
}

// A load that needs the Ps back soon after they went makes the next
// calm spell twice as long, up to MaxCalm; one that stayed on one P as
// long as its calm spell is a new load and resets it.
func TestBackoff(t *testing.T) {
	p := DefaultPolicy(2)
	p.Calm, p.MaxCalm = 10, 50
	g := NewGovernor(p)
	// spell returns how many calm periods g takes to go to one P.
	spell := func() int {
		for i := 1; i <= 10*p.MaxCalm; i++ {
			if g.Next(light) == 1 {
				return i
			}
		}
		t.Fatalf("no one P after %d calm periods", 10*p.MaxCalm)
		return 0
	}
	if n := g.Next(busy); n != 2 {
		t.Fatalf("busy: %d Ps", n)
	}
	for _, want := range []int{10, 20, 40, 50, 50} {
		if got := spell(); got != want {
			t.Fatalf("calm spell %d periods, want %d", got, want)
		}
		if n := g.Next(busy); n != 2 { // a flap: at once
			t.Fatalf("busy: %d Ps", n)
		}
	}
	// Stay on one as long as the spell was, then a busy period: reset.
	if got := spell(); got != 50 {
		t.Fatalf("calm spell %d, want 50", got)
	}
	feed(g, repeat(light, 49)...)
	if n := g.Next(busy); n != 2 {
		t.Fatalf("busy: %d Ps", n)
	}
	if got := spell(); got != p.Calm {
		t.Fatalf("after a long stay on one P, calm spell %d periods, want %d", got, p.Calm)
	}
}

func TestOneMaxNeverChanges(t *testing.T) {
	g := NewGovernor(DefaultPolicy(1))
	for i, n := range feed(g, append(repeat(busy, 5), repeat(light, 50)...)...) {
		if n != 1 {
			t.Fatalf("period %d: %d Ps with a default of 1", i, n)
		}
	}
}

func TestWaited(t *testing.T) {
	inf := math.Inf(1)
	h := &metrics.Float64Histogram{
		Buckets: []float64{math.Inf(-1), 0, 10e-6, 100e-6, 1e-3, inf},
		Counts:  []uint64{7, 100, 30, 6, 3},
	}
	last := []uint64{7, 50, 10, 4, 1}
	// Only buckets whose middle is over lateWait count: (10+100)/2 µs ×
	// 20 and (100+1000)/2 µs × 2; the last, unbounded, at its lower bound
	// × 2.
	want := 20*55e-6 + 2*550e-6 + 2*1e-3
	if got := waited(h, last); math.Abs(got-want) > 1e-12 {
		t.Errorf("waited = %g s, want %g", got, want)
	}
	if got := waited(h, nil); got < want {
		t.Errorf("waited with no earlier counts = %g s, want at least %g", got, want)
	}
}

// Three goroutines that each run about 200 µs at a time on one P keep
// two waiting, each longer than lateWait: the meter must read a Wait of
// about 2. It checks the runtime's sampling period (trackingPeriod) and
// Little's law, not any timing.
func TestWaitCountsRunnable(t *testing.T) {
	if os.Getenv("GOMAXPROCS") != "" {
		t.Skip("GOMAXPROCS set")
	}
	if running.Load() {
		t.Skip("a governor is running")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for !stop.Load() {
				for end := time.Now().Add(200 * time.Microsecond); time.Now().Before(end); {
				}
				runtime.Gosched()
			}
		})
	}
	time.Sleep(20 * time.Millisecond) // all three running
	m := newMeter(nil)
	time.Sleep(500 * time.Millisecond)
	s := m.read()
	stop.Store(true)
	wg.Wait()
	if s.Wait < 1.2 || s.Wait > 3.5 {
		t.Errorf("Wait = %.2f goroutines with two always waiting", s.Wait)
	}
	t.Logf("Wait %.2f, CPU %.2f", s.Wait, s.CPU)
}

func TestStart(t *testing.T) {
	if os.Getenv("GOMAXPROCS") != "" || runtime.GOMAXPROCS(0) < 2 {
		t.Skip("GOMAXPROCS set, or one P already")
	}
	max := runtime.GOMAXPROCS(0)
	stop, ok := Start(time.Hour, nil, nil)
	if !ok {
		t.Fatal("Start: not started")
	}
	if _, again := Start(time.Hour, nil, nil); again {
		t.Error("a second governor started while one runs")
	}
	stop()
	stop()
	if n := runtime.GOMAXPROCS(0); n != max {
		t.Errorf("after stop: %d Ps, want the default %d", n, max)
	}
	if stop, ok := Start(time.Hour, nil, nil); !ok {
		t.Error("Start after stop: not started")
	} else {
		stop()
	}
}

// phase feeds g the samples and fails unless it answers want to each.
func phase(t *testing.T, g *Governor, what string, want int, samples ...Sample) {
	t.Helper()
	for i, n := range feed(g, samples...) {
		if n != want {
			t.Fatalf("%s, period %d: %d Ps, want %d", what, i, n, want)
		}
	}
}

// waitingAt is a period in which goroutines queue for the one P while
// the process gets work done at the given rate.
func waitingAt(work float64) Sample { return Sample{CPU: 0.7, Wait: 0.3, Work: work} }

// startTrial feeds g a waiting period on one P, then the trial's
// periods with all Ps at the given work rate; after the last, it tries
// one P.
func startTrial(t *testing.T, g *Governor, work float64) {
	t.Helper()
	phase(t, g, "trial, all Ps", 2, repeat(waitingAt(work), g.p.Trial)...)
	phase(t, g, "trial, to one P", 1, waitingAt(work))
}

// A load whose goroutines wait for the one P, but which gets no more
// done with all Ps, keeps one P after the trial; waiting is then not
// acted on for Blind periods, twice as long after the next such trial.
func TestTrialOneWins(t *testing.T) {
	p := DefaultPolicy(2)
	g := NewGovernor(p)
	for _, blind := range []int{p.Blind, 2 * p.Blind} {
		startTrial(t, g, 100)
		phase(t, g, "trial, one P", 1, repeat(waitingAt(100), p.Trial)...)
		if g.Why() == "" {
			t.Fatal("one P won the trial, and Why says nothing")
		}
		phase(t, g, "after the trial", 1, waitingAt(100))
		if why := g.Why(); why != "" {
			t.Fatalf("a period that decided nothing: Why %q", why)
		}
		blind--
		phase(t, g, "after the trial", 1, repeat(waitingAt(100), blind)...)
	}
	if n := g.Next(Sample{CPU: p.UpCPU + 0.01, Work: 100}); n != 2 {
		t.Fatalf("one P saturated after a trial: %d Ps, want 2", n)
	}
}

// A load that gets more done with all Ps keeps them after the trial;
// within Gain of each other, one P wins.
func TestTrialMaxWins(t *testing.T) {
	p := DefaultPolicy(2)
	g := NewGovernor(p)
	startTrial(t, g, 100*(1+p.Gain+0.01))
	phase(t, g, "trial, one P", 1, repeat(waitingAt(100), p.Trial-1)...)
	phase(t, g, "after the trial", 2, repeat(waitingAt(100), 3*p.Calm)...)

	g = NewGovernor(p)
	startTrial(t, g, 100*(1+p.Gain-0.01))
	phase(t, g, "trial, one P", 1, repeat(waitingAt(100), 2*p.Trial)...)
}

// The first period after each switch of a trial is not counted: there
// the switch is still settling.
func TestTrialSkipsFirstPeriod(t *testing.T) {
	p := DefaultPolicy(2)
	g := NewGovernor(p)
	// Counted, the first period with all Ps would make them win, and
	// so would the first with one P.
	onMax := append([]Sample{waitingAt(100), waitingAt(1000)}, repeat(waitingAt(100), p.Trial-2)...)
	phase(t, g, "trial, all Ps", 2, onMax...)
	phase(t, g, "trial, to one P", 1, waitingAt(100))
	onOne := append([]Sample{waitingAt(10)}, repeat(waitingAt(100), p.Trial-1)...)
	phase(t, g, "trial, one P", 1, onOne...)
	phase(t, g, "after the trial", 1, repeat(waitingAt(100), p.Blind)...)
}

// One P saturating during a trial ends it with all Ps at once.
func TestTrialSaturated(t *testing.T) {
	p := DefaultPolicy(2)
	g := NewGovernor(p)
	startTrial(t, g, 100)
	phase(t, g, "one P saturated", 2, Sample{CPU: p.UpCPU + 0.01, Work: 200})
	phase(t, g, "after", 2, repeat(waitingAt(100), p.Calm)...)
}

// Once the load that lost a trial has been away for Calm periods, the
// next load that waits is tried again.
func TestBlindEndsWithTheLoad(t *testing.T) {
	p := DefaultPolicy(2)
	g := NewGovernor(p)
	startTrial(t, g, 100)
	phase(t, g, "trial, one P", 1, repeat(waitingAt(100), p.Trial)...)
	phase(t, g, "load away", 1, repeat(Sample{CPU: 0.1, Work: 20}, p.Calm)...)
	phase(t, g, "a new load", 2, waitingAt(1000))
}

// Without a work rate there is nothing to try: waiting gives the Ps back.
func TestNoWorkNoTrial(t *testing.T) {
	g := NewGovernor(DefaultPolicy(2))
	phase(t, g, "waiting, no work rate", 2, repeat(busy, 50)...)
}

// Work is the counter's growth over the period, per second.
func TestMeterWork(t *testing.T) {
	var done uint64 = 5000 // what came before is not this period's
	m := newMeter(func() uint64 { return done })
	done += 1000
	time.Sleep(100 * time.Millisecond)
	if s := m.read(); s.Work <= 100 || s.Work > 10000 {
		t.Errorf("Work = %.0f/s for 1000 over at least 100 ms", s.Work)
	}
	if s := m.read(); s.Work != 0 {
		t.Errorf("Work = %.0f/s with no work done", s.Work)
	}
}

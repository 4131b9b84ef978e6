// Package procs runs the Go scheduler with one P while one P is enough
// for the load, and with the runtime's default number of Ps otherwise.
//
// With one message in flight, every hand-off between a connection's
// reader, the owner and a connection's writer readies a goroutine while
// another P is idle; the runtime then wakes a second thread to spin for
// work that the current thread runs next anyway. Those wake-ups (futex
// calls, context switches, sysmon) cost broker CPU per message and, on a
// small machine, take a core from the clients just when they are due to
// receive the reply (BENCHMARKS.md, "One chunk in flight"). With one P
// there is no idle P to start a thread for.
//
// One P must not cost throughput, so the governor watches two signals
// every period: the CPU the process uses (getrusage) and how many
// goroutines, on average, were runnable but waiting for a P (from the
// runtime's scheduling latencies, /sched/latencies:seconds). A load that
// fits on one P with room to spare (little CPU, nobody waiting) gets one
// P after a calm spell; on one P, a period in which goroutines queued for
// the P or the P was nearly saturated gives the default back at once.
// Each change stops the world for a moment, so a load that needed the Ps
// back soon after losing them doubles the calm spell required before the
// next try (bounded), and the governor settles instead of flapping.
//
// Goroutines waiting for the one P do not always mean that more Ps
// would do more: the wake-ups they bring may cost more than the queue
// (on a small machine whose other cores run the clients, most loads).
// So a process that counts its work (the broker: messages received)
// gets a trial instead: a few periods with all Ps, a few with one, and
// the Ps stay only if they did measurably more.
package procs

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// Sample is what the governor sees of one period.
type Sample struct {
	// CPU is the CPU time the process used over the period (user and
	// system, all threads), in CPUs: 0.5 is half a core.
	CPU float64
	// Wait is the mean number of goroutines that were runnable but not
	// running (waiting for a P) over the period, counting only waits
	// longer than lateWait.
	Wait float64
	// Work is the rate at which the process got work done over the
	// period, per second (for the broker: messages received), or 0 if
	// it does not say.
	Work float64
}

// Policy holds the governor's thresholds.
type Policy struct {
	// Max is the number of Ps when not on one: the runtime's default.
	Max int
	// With Max Ps, a period is calm when CPU ≤ DownCPU and Wait ≤
	// DownWait. Idle Ps spin, so a light load takes more CPU with Max Ps
	// than with one; DownCPU only keeps loads that surely need more than
	// one CPU from trying one P, and Wait (few late waits even with Max
	// Ps) is what says one may do. A wrong guess costs a period on one P
	// and doubles the next calm spell.
	DownCPU, DownWait float64
	// With one P, Max comes back after a period with CPU > UpCPU (the P
	// saturated). It is tried after a period with Wait > UpWait while
	// CPU > UpWaitCPU (goroutines queued behind a busy P), or with Wait
	// > UpWaitAlone. Late waits while the process uses little CPU mean
	// that its thread was not running: the machine's CPUs were busy with
	// other processes, which a second P would compete with rather than
	// relieve, unless many goroutines wait.
	UpCPU, UpWait, UpWaitCPU, UpWaitAlone float64
	// Calm is how many calm periods in a row it takes to go to one P;
	// after a flap (Ps given back before as many periods on one) the
	// count doubles, up to MaxCalm.
	Calm, MaxCalm int
	// Waiting goroutines say that one P is short for a load that keeps
	// many messages in flight, but not for one whose clients and workers
	// keep few in flight each (Majordomo): there a queue at the P costs
	// less than the wake-ups that Max Ps bring, and one P does more work.
	// So when the process reports its work (Sample.Work), waiting starts
	// a trial instead: Trial periods with Max Ps, then Trial with one,
	// the first of each not counted (the switch settles). Max stays if
	// its work rate beats one P's by more than Gain (a fraction); else
	// one P stays, and waiting is not acted on for Blind periods (twice
	// as many after each trial one P wins in a row, up to MaxCalm) or
	// until the load falls away (work under a quarter of the trial's for
	// Calm periods).
	Trial int
	Gain  float64
	Blind int
}

// DefaultPolicy is the policy for a process whose default is max Ps,
// sampled every Period. On one P, issue 14's one-chunk-in-flight case
// showed a Wait of 0–0.07 at 0.4–0.8 CPU, and up to 0.8 at 0.2–0.4 CPU
// while other processes kept the machine busy; pipelined 4 KiB and
// 64 KiB loads (which one P slowed by a tenth or more in session 5),
// Waits of 0.05–1.5 at 0.45–0.9 CPU (most periods over 0.1 at over 0.5
// CPU), and many connections 2–11. With two Ps, the first had Waits of 0–0.02 in
// most periods, the others 0.1 and more (BENCHMARKS.md, "One chunk in
// flight (session 5)"). In trials on that machine, one P received
// 8–60% more messages per second than two in every one-writer zpipes
// case and in Majordomo's benchmark, within 12% either way with four
// writers on one pipe, and about half as many with 100 pipes
// (BENCHMARKS.md, "The governor's trial (session 6)"); a Gain of 3%
// leaves the Ps to loads that clearly use them.
func DefaultPolicy(max int) Policy {
	return Policy{Max: max, DownCPU: 1, DownWait: 0.05,
		UpCPU: 0.95, UpWait: 0.1, UpWaitCPU: 0.5, UpWaitAlone: 1, Calm: 10, MaxCalm: 600,
		Trial: 3, Gain: 0.03, Blind: 50}
}

// Governor decides, period after period, how many Ps to run with. It
// only decides; Start applies its decisions to the runtime.
type Governor struct {
	p     Policy
	procs int // what it last asked for
	calm  int // calm periods needed now
	quiet int // calm periods in a row with Max Ps
	onOne int // periods on one P since the last change

	trial     *trial  // running, or nil
	blind     int     // periods left in which waiting is not acted on
	blindFor  int     // how long the next blind spell is
	blindWork float64 // one P's work rate in the trial that began it
	away      int     // periods in a row the load has been away since
	why       string  // what the last Next decided, "" if nothing
}

// trial is a comparison of Max Ps and one P under the same load.
type trial struct {
	onMax   bool
	periods int     // in this phase
	sum     float64 // of the work rates counted in this phase
	maxWork float64 // Max's mean rate, once measured
}

// NewGovernor starts with one P, as if one had been enough for a while:
// a process starts idle, and a load that needs more gets them within a
// period.
func NewGovernor(p Policy) *Governor {
	return &Governor{p: p, procs: 1, calm: p.Calm, onOne: p.Calm, blindFor: p.Blind}
}

// Next takes the sample of the period just ended and returns the number
// of Ps to run with from now on.
func (g *Governor) Next(s Sample) int {
	g.why = ""
	switch {
	case g.p.Max <= 1:
	case g.trial != nil:
		g.trialNext(s)
	case g.procs == 1:
		g.oneNext(s)
	default:
		g.maxNext(s)
	}
	return g.procs
}

// Why says what the last Next decided and why, or "" if it decided
// nothing. One P winning a trial changes nothing, but is worth telling.
func (g *Governor) Why() string { return g.why }

func (g *Governor) decide(procs int, why string) {
	g.procs, g.why = procs, why
}

func (g *Governor) oneNext(s Sample) {
	g.onOne++
	blind := g.blind > 0
	if blind {
		g.blind--
		if s.Work < g.blindWork/4 {
			g.away++
		} else {
			g.away = 0
		}
		if g.away >= g.p.Calm { // a new load is a new question
			g.blind, g.blindFor = 0, g.p.Blind
		}
	}
	waiting := s.Wait > g.p.UpWaitAlone || s.Wait > g.p.UpWait && s.CPU > g.p.UpWaitCPU
	switch {
	case s.CPU > g.p.UpCPU:
		g.up("one P saturated")
	case !waiting || blind:
	case s.Work > 0 && g.p.Trial > 1:
		g.trial = &trial{onMax: true}
		g.decide(g.p.Max, "goroutines wait for the P: trying all Ps")
	default:
		g.up("goroutines wait for the P")
	}
}

// up gives the Ps back. If they went to one P too soon, the next calm
// spell must be longer.
func (g *Governor) up(why string) {
	if g.onOne < g.calm {
		g.calm = min(2*g.calm, g.p.MaxCalm)
	} else {
		g.calm = g.p.Calm // a new load, not a flap
	}
	g.quiet = 0
	g.decide(g.p.Max, why)
}

func (g *Governor) trialNext(s Sample) {
	t := g.trial
	t.periods++
	if t.periods > 1 {
		t.sum += s.Work
	}
	if !t.onMax && s.CPU > g.p.UpCPU {
		g.trial = nil
		g.up("one P saturated")
		return
	}
	if t.periods < g.p.Trial {
		return
	}
	work := t.sum / float64(t.periods-1)
	if t.onMax {
		t.onMax, t.periods, t.sum, t.maxWork = false, 0, 0, work
		g.decide(1, fmt.Sprintf("trying one P: all Ps did %.0f/s", work))
		return
	}
	g.trial = nil
	if t.maxWork > work*(1+g.p.Gain) {
		g.blindFor = g.p.Blind
		g.up(fmt.Sprintf("all Ps do more: %.0f/s against %.0f/s on one", t.maxWork, work))
		return
	}
	g.blind, g.blindWork, g.away, g.onOne = g.blindFor, work, 0, g.calm
	g.blindFor = min(2*g.blindFor, g.p.MaxCalm)
	g.decide(1, fmt.Sprintf("one P does as much: %.0f/s against %.0f/s on all", work, t.maxWork))
}

func (g *Governor) maxNext(s Sample) {
	if s.CPU <= g.p.DownCPU && s.Wait <= g.p.DownWait {
		g.quiet++
	} else {
		g.quiet = 0
	}
	if g.quiet >= g.calm {
		g.onOne = 0
		g.decide(1, "calm")
	}
}

// lateWait is the shortest wait for a P that Wait counts. On one P, a
// hand-off waits a few µs for the goroutine that made it to park: less
// than waking a thread to run it on a second P would take, so such
// waits are what one P is for, not a sign that it is short (see
// DefaultPolicy for what loads show).
const lateWait = 50e-6

// trackingPeriod is how often the runtime times a goroutine's wait for
// a P: on one transition out of running in 8 (gTrackingPeriod in the
// runtime's runtime2.go). TestWaitCountsRunnable fails if that changes.
const trackingPeriod = 8

// meter reads the samples.
type meter struct {
	m      []metrics.Sample
	counts []uint64 // the latency histogram's counts at the last read
	cpu    time.Duration
	work   func() uint64 // nil if the process does not count its work
	done   uint64        // what work said at the last read
	at     time.Time
}

func newMeter(work func() uint64) *meter {
	m := &meter{m: []metrics.Sample{{Name: "/sched/latencies:seconds"}}, work: work}
	m.read()
	return m
}

// read returns the sample since the last read.
func (m *meter) read() Sample {
	metrics.Read(m.m)
	cpu, at := cpuTime(), time.Now()
	var done uint64
	if m.work != nil {
		done = m.work()
	}
	var s Sample
	if dt := at.Sub(m.at).Seconds(); m.counts != nil && dt > 0 {
		s.CPU = (cpu - m.cpu).Seconds() / dt
		s.Wait = waited(m.m[0].Value.Float64Histogram(), m.counts) * trackingPeriod / dt
		s.Work = float64(done-m.done) / dt
	}
	h := m.m[0].Value.Float64Histogram()
	m.counts = append(m.counts[:0], h.Counts...)
	m.cpu, m.done, m.at = cpu, done, at
	return s
}

// waited is the total time, in seconds, of the waits longer than
// lateWait that h counted since it held the counts last (each taken at
// its bucket's middle). By Little's law, that total over the period is
// the mean number of goroutines waiting so long.
func waited(h *metrics.Float64Histogram, last []uint64) float64 {
	var sum float64
	for i, c := range h.Counts {
		if i < len(last) {
			c -= last[i]
		}
		if c == 0 {
			continue
		}
		lo, hi := h.Buckets[i], h.Buckets[i+1]
		switch {
		case math.IsInf(lo, -1):
			lo = 0
		case math.IsInf(hi, 1):
			hi = lo
		}
		if mid := (lo + hi) / 2; mid > lateWait {
			sum += float64(c) * mid
		}
	}
	return sum
}

// Period is how often a governor samples the process: a load that
// outgrows one P gets the others back within about this long.
const Period = 100 * time.Millisecond

var running atomic.Bool // one governor per process

// Start runs a governor that samples the process every period and sets
// its Ps, until the returned function is called; that function gives
// back the runtime's default and returns once the governor has stopped.
// work, if not nil, counts the work the process has done so far (see
// Sample.Work); logf, if not nil, is told of each change and why. Start
// does nothing (and says false) if GOMAXPROCS is set in the environment
// (the operator's choice wins), if the default is one P already, or if a
// governor is running.
func Start(period time.Duration, work func() uint64, logf func(procs int, s Sample, why string)) (stop func(), ok bool) {
	max := runtime.GOMAXPROCS(0)
	if os.Getenv("GOMAXPROCS") != "" || max <= 1 || cpuTime() < 0 || !running.CompareAndSwap(false, true) {
		return func() {}, false
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		defer running.Store(false)
		defer runtime.SetDefaultGOMAXPROCS()
		govern(NewGovernor(DefaultPolicy(max)), period, newMeter(work), quit, logf)
	}()
	var once sync.Once
	return func() { once.Do(func() { close(quit); <-done }) }, true
}

func govern(g *Governor, period time.Duration, m *meter, quit <-chan struct{}, logf func(int, Sample, string)) {
	cur := g.procs
	runtime.GOMAXPROCS(cur)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
		}
		s := m.read()
		n := g.Next(s)
		if n != cur {
			cur = n
			if n == 1 {
				runtime.GOMAXPROCS(1)
			} else {
				// The runtime's default, which also follows later
				// changes of the CPU limit (cgroup quota) until the next
				// one P.
				runtime.SetDefaultGOMAXPROCS()
			}
		}
		if why := g.Why(); why != "" && logf != nil {
			logf(n, s, why)
		}
	}
}

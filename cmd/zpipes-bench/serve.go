package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/zbroker/zbroker/internal/gcfloor"
	"github.com/zbroker/zbroker/internal/procs"
	"github.com/zbroker/zbroker/internal/relay"
	"github.com/zbroker/zbroker/zmtp"
	"github.com/zbroker/zbroker/zpipes"
)

// A target is a broker the bench drives: a fresh instance per case.
type target struct {
	Name string // "zpipes", "relay", or "external"
	// Start starts an instance; a child broker writes a CPU profile to
	// profile if it is not "".
	Start func(profile string) (instance, error)
}

type instance interface {
	Endpoint() string
	PID() int // 0 when the broker is not a child we can measure
	Stop()
}

// serve is the hidden subcommand "serve zpipes|relay ENDPOINT [CPUPROFILE]":
// it runs a broker until killed, or until its standard input closes (the
// bench holds it open, so the child dies with it).
func serve(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 && len(args) != 3 {
		fmt.Fprintln(stderr, "usage: zpipes-bench serve zpipes|relay ENDPOINT [CPUPROFILE]")
		return 2
	}
	if len(args) == 3 {
		stop, err := startCPUProfile(args[2])
		if err != nil {
			fmt.Fprintf(stderr, "zpipes-bench serve: %v\n", err)
			return 1
		}
		defer stop()
	}
	// The heap floor zbroker sets with its default limits (memory.go):
	// the child is measured as zbroker runs.
	gcfloor.Start(gcfloor.For(0))
	// zbroker's default --procs auto (internal/procs), unless
	// ZBROKER_PROCS, as zbroker reads it, says default; the bare relay
	// is the baseline and keeps the runtime's default.
	switch p := os.Getenv("ZBROKER_PROCS"); {
	case p != "" && p != "auto" && p != "default":
		fmt.Fprintf(stderr, "zpipes-bench serve: ZBROKER_PROCS=%q: want auto or default (GOMAXPROCS=N fixes N)\n", p)
		return 2
	case args[0] != "relay" && p != "default":
		stop, _ := procs.Start(procs.Period, zmtp.Received, nil)
		defer stop()
	}
	var stop func()
	switch args[0] {
	case "zpipes":
		log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		srv, err := zpipes.Start(zpipes.Options{Endpoint: args[1], Logger: log})
		if err != nil {
			fmt.Fprintf(stderr, "zpipes-bench serve: %v\n", err)
			return 1
		}
		stop = func() { srv.Close() }
	case "zpipes-always", "zpipes-interval", "zpipes-never":
		var err error
		if stop, err = startDurable(strings.TrimPrefix(args[0], durablePrefix), args[1], stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "zpipes-bench serve: %v\n", err)
			return 1
		}
	case "relay":
		r, err := relay.Start(args[1])
		if err != nil {
			fmt.Fprintf(stderr, "zpipes-bench serve: %v\n", err)
			return 1
		}
		stop = r.Close
	default:
		fmt.Fprintf(stderr, "zpipes-bench serve: unknown broker %q (zpipes or relay)\n", args[0])
		return 2
	}
	fmt.Fprintln(stdout, "ready")
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	<-ctx.Done()
	stop()
	return 0
}

var childSeq atomic.Int64

// childTarget runs each instance as a child process: this executable
// re-run as "serve KIND ENDPOINT", so its CPU time and peak RSS are the
// broker's alone.
func childTarget(kind string) target {
	return target{Name: kind, Start: func(profile string) (instance, error) {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		ep := childEndpoint()
		args := []string{"serve", kind, ep}
		if profile != "" {
			args = append(args, profile)
		}
		return startChild(kind, ep, exe, args...)
	}}
}

func childEndpoint() string {
	return fmt.Sprintf("ipc://@/zpipes/zpipes-bench-%d-%d", os.Getpid(), childSeq.Add(1))
}

// startChild runs exe with args, a broker listening on ep that prints
// "ready" on its standard output once it is, and ends when its standard
// input closes.
func startChild(kind, ep, exe string, args ...string) (instance, error) {
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan error, 1)
	c := &child{cmd: cmd, stdin: stdin, ep: ep, exited: make(chan struct{}), outDone: make(chan struct{}), started: time.Now()}
	go func() {
		defer close(c.outDone)
		br := bufio.NewReader(out)
		line, err := br.ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("unexpected %q", line)
		}
		ready <- err
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if n, ok := strings.CutPrefix(strings.TrimSpace(line), "fsyncs "); ok {
				if v, err := strconv.ParseUint(n, 10, 64); err == nil {
					c.fsyncs.Store(v)
					c.hasFsyncs.Store(true)
				}
			}
		}
	}()
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	select {
	case err = <-ready:
	case <-time.After(10 * time.Second):
		err = fmt.Errorf("no ready within 10s")
	}
	if err != nil {
		c.Stop()
		return nil, fmt.Errorf("starting %s broker (%s %s): %v", kind, exe, strings.Join(args, " "), err)
	}
	return c, nil
}

type child struct {
	cmd     *exec.Cmd
	stdin   io.Closer
	ep      string
	exited  chan struct{}
	waitErr error // set before exited is closed
	stopped atomic.Bool
	// A durable broker says how many fsyncs it did when it stops.
	outDone   chan struct{}
	started   time.Time
	stoppedAt time.Time
	fsyncs    atomic.Uint64
	hasFsyncs atomic.Bool
}

// Fsyncs returns the fsyncs a stopped durable broker reported and the
// seconds it ran.
func (c *child) Fsyncs() (uint64, float64, bool) {
	<-c.outDone
	return c.fsyncs.Load(), c.stoppedAt.Sub(c.started).Seconds(), c.hasFsyncs.Load()
}

func (c *child) Endpoint() string { return c.ep }
func (c *child) PID() int         { return c.cmd.Process.Pid }

// Died says how the child ended if it ended before Stop, waiting up to
// wait for it to end.
func (c *child) Died(wait time.Duration) error {
	select {
	case <-c.exited:
	case <-time.After(wait):
	}
	select {
	case <-c.exited:
		if c.stopped.Load() {
			return nil
		}
		if c.waitErr != nil {
			return fmt.Errorf("broker process %d died: %v", c.cmd.Process.Pid, c.waitErr)
		}
		return fmt.Errorf("broker process %d exited", c.cmd.Process.Pid)
	default:
		return nil
	}
}

func (c *child) Stop() {
	if c.stopped.Swap(true) {
		return
	}
	c.stoppedAt = time.Now()
	c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		c.cmd.Process.Kill()
		<-c.exited
	}
}

// externalTarget is a broker somebody else runs: nothing to start or
// measure.
func externalTarget(name, endpoint string) target {
	return target{Name: name, Start: func(string) (instance, error) { return external(endpoint), nil }}
}

type external string

func (e external) Endpoint() string { return string(e) }
func (e external) PID() int         { return 0 }
func (e external) Stop()            {}

// clkTck is USER_HZ, the unit of utime and stime in /proc/PID/stat; it is
// 100 on every Linux architecture Go supports.
const clkTck = 100

// cpuSeconds returns utime+stime of process pid ("self" for 0 is not
// meant: pass os.Getpid()).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields that follow start after its last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return float64(ut+st) / clkTck, nil
}

// peakRSS returns VmHWM of process pid in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return kb << 10, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

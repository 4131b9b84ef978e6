// Command zpipes-bench measures a zpipes broker, and the bare relay
// (internal/relay) under the same load in the same run, so each zpipes
// figure can be quoted as a ratio to the ceiling for a broker in the middle.
// See BENCHMARKS.md.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/zbroker/zbroker/internal/units"
	"github.com/zbroker/zbroker/internal/wal"
	"github.com/zbroker/zbroker/zmtp"
)

const usage = `usage: zpipes-bench [flags]

Drives a zpipes broker with P pipes, each with N writers and one reader (one
DEALER connection each, W commands in flight per connection), for a sweep of
chunk sizes and a few fixed cases, and the bare relay under the same load.
Each case gets a fresh broker in a child process, so its CPU time and peak
RSS are measured alone. Prints a table (or --json) on stdout and a progress
line on stderr; exits 1 if any chunk was lost, reordered or malformed.

Case groups (--cases):
  sweep    each --sizes size, --writers writers × --pipes pipes, --window
  fanin    64 B, --fanin-writers writers → 1 reader, 1 pipe, --window
  pipes    64 B, --many-pipes pipes × (1 writer, 1 reader), --window
  latency  64 B, 1 writer, 1 pipe, window 1: one chunk in flight

A connection's window is capped so that it has at most --max-inflight bytes
of chunks in flight (1 MiB chunks: window 16 by default).

Flags:
`

type config struct {
	Sizes         []int64
	Writers       int
	Pipes         int
	Window        int
	FaninWriters  int
	ManyPipes     int
	MaxInflight   int64
	Warmup        time.Duration
	Duration      time.Duration
	Cases         []string
	JSON          bool
	Endpoint      string
	RelayEndpoint string
	NoRelay       bool
	ProfileDir    string
	Repeat        int
	Durable       []string // fsync modes of durable targets
	AckEvery      int      // > 0: also the ackTarget, readers acknowledging every AckEvery chunks
	Client        string   // "go" or "libzmq": the load generator
	NoLibzmqRelay bool
	libzmq        libzmqTools // set when the C programs are built
	notes         []string
	Curve         *zmtp.CurveOptions `json:"-"`
	ClusterNodes  []int              // --cluster: run the cluster comparison only
}

// libzmqRelay is the C relay's server name; "relay" is the Go relay on
// zbroker's own transport.
const libzmqRelay = "libzmq-relay"

// benchCase is one load shape.
type benchCase struct {
	Group   string `json:"group"`
	Size    int    `json:"size"`
	Writers int    `json:"writers"`
	Pipes   int    `json:"pipes"`
	Window  int    `json:"window"` // effective window per connection
}

func (c benchCase) label() string {
	return fmt.Sprintf("%s %s %dw×%dp win%d", c.Group, sizeLabel(int64(c.Size)), c.Writers, c.Pipes, c.Window)
}

func sizeLabel(n int64) string {
	if s := units.FormatSize(n); s != fmt.Sprint(n) {
		return s
	}
	return fmt.Sprintf("%dB", n)
}

// result is one case against one broker.
type result struct {
	Case           string   `json:"case"`
	benchCase               // flattened
	Server         string   `json:"server"`
	Endpoint       string   `json:"endpoint"`
	Chunks         int64    `json:"chunks"`
	Seconds        float64  `json:"seconds"`
	ChunksPerSec   float64  `json:"chunks_per_sec"`
	MBPerSec       float64  `json:"mb_per_sec"`
	P50us          float64  `json:"p50_us"`
	P99us          float64  `json:"p99_us"`
	MaxUs          float64  `json:"max_us"`
	LatencySamples uint64   `json:"latency_samples"`
	CPUSeconds     *float64 `json:"cpu_s,omitempty"`
	CPUusPerChunk  *float64 `json:"cpu_us_per_chunk,omitempty"`
	PeakRSS        *int64   `json:"peak_rss_bytes,omitempty"`
	GenCPUSeconds  *float64 `json:"gen_cpu_s,omitempty"`
	Written        int64    `json:"written"`
	Read           int64    `json:"read"`
	Fillers        int64    `json:"fillers"`
	Errors         []string `json:"errors,omitempty"`
	VsRelay        *ratios  `json:"vs_relay,omitempty"`
	VsLibzmq       *ratios  `json:"vs_libzmq_relay,omitempty"`
	// FsyncsPerSec (durable targets) is the broker's fsyncs over its
	// whole run (warmup included) per second; VsMemory compares with
	// the memory broker in the same case.
	FsyncsPerSec *float64 `json:"fsyncs_per_sec,omitempty"`
	VsMemory     *ratios  `json:"vs_memory,omitempty"`
	// Runs lists each run's figures when the case ran more than once
	// (--repeat); the figures above are then their medians.
	Runs []runFigures `json:"runs,omitempty"`
}

type runFigures struct {
	ChunksPerSec float64 `json:"chunks_per_sec"`
	P50us        float64 `json:"p50_us"`
	P99us        float64 `json:"p99_us"`
}

// ratios are a broker's figures divided by the bare relay's in the same
// case: above 1 is more (throughput, latency, cost) than the relay.
type ratios struct {
	ChunksPerSec  float64  `json:"chunks_per_sec"`
	MBPerSec      float64  `json:"mb_per_sec"`
	P50           float64  `json:"p50"`
	P99           float64  `json:"p99"`
	CPUusPerChunk *float64 `json:"cpu_us_per_chunk,omitempty"`
	PeakRSS       *float64 `json:"peak_rss,omitempty"`
}

type report struct {
	Command     string    `json:"command"`
	Machine     machine   `json:"machine"`
	WarmupSec   float64   `json:"warmup_s"`
	DurationSec float64   `json:"duration_s"`
	Repeat      int       `json:"repeat"`
	Client      string    `json:"client"`
	Notes       []string  `json:"notes,omitempty"`
	Results     []*result `json:"results"`
	// FsyncPerChunk is how many 64-byte records a second one
	// write+fsync each allows in $TMPDIR, measured in this run when it
	// has durable targets.
	FsyncPerChunk *float64 `json:"one_fsync_per_chunk_per_sec,omitempty"`
	Targets       []check  `json:"targets,omitempty"`
	OK            bool     `json:"ok"`
}

// check is one of issue 3's targets, evaluated on this run's figures.
type check struct {
	Target string  `json:"target"`
	Server string  `json:"server"`
	Value  float64 `json:"value"` // a ratio
	Limit  float64 `json:"limit"`
	AtMost bool    `json:"at_most,omitempty"` // Value must be <= Limit, else >=
	Met    bool    `json:"met"`
	// Relay is the same figure for the bare relay, for context, where it
	// makes sense (scaling targets).
	Relay *float64 `json:"relay,omitempty"`
}

type machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model,omitempty"`
	Kernel    string `json:"kernel,omitempty"`
	GoVersion string `json:"go"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	// LoadAvg is the 1-minute load average when the run started and
	// ended: above the CPU count, other processes competed for the CPUs.
	LoadAvg [2]float64 `json:"load_avg"`
	// Revision is the source's git revision, "+dirty" if modified.
	Revision string `json:"revision,omitempty"`
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "serve" {
		return serve(args[1:], stdout, stderr)
	}
	cfg, code := parseFlags(args, stderr)
	if cfg == nil {
		return code
	}
	if len(cfg.ClusterNodes) > 0 {
		return runCluster(cfg, cfg.ClusterNodes, stdout, stderr)
	}
	if cfg.Client == "libzmq" || !cfg.NoLibzmqRelay {
		tools, err := buildLibzmq()
		switch {
		case err == nil:
			cfg.libzmq = tools
		case cfg.Client == "libzmq":
			fmt.Fprintf(stderr, "zpipes-bench: --client libzmq: cannot build the libzmq load generator: %v\n", err)
			return 1
		default:
			note := fmt.Sprintf("libzmq relay skipped: cannot build it (%v); install a C compiler and libzmq's headers (libzmq3-dev)", err)
			fmt.Fprintf(stderr, "zpipes-bench: %s\n", note)
			cfg.notes = append(cfg.notes, note)
		}
	}
	var targets []target
	switch {
	case cfg.Endpoint != "":
		if cfg.RelayEndpoint != "" && !cfg.NoRelay {
			targets = append(targets, externalTarget("relay", cfg.RelayEndpoint))
		}
		targets = append(targets, externalTarget("external", cfg.Endpoint))
	default:
		if !cfg.NoRelay {
			if cfg.RelayEndpoint != "" {
				targets = append(targets, externalTarget("relay", cfg.RelayEndpoint))
			} else {
				targets = append(targets, childTarget("relay"))
			}
		}
		targets = append(targets, childTarget("zpipes"))
		for _, m := range cfg.Durable {
			targets = append(targets, childTarget(durablePrefix+m))
		}
		if cfg.AckEvery > 0 {
			t := childTarget("zpipes")
			t.Name = ackTarget
			targets = append(targets, t)
		}
	}
	if !cfg.NoLibzmqRelay && cfg.libzmq.Relay != "" {
		// Between the baselines and the broker measured: each round
		// runs them back to back, reversing the order every other round.
		targets = slices.Insert(targets, len(targets)-1, libzmqRelayTarget(cfg.libzmq))
	}
	if cfg.ProfileDir != "" {
		stop, err := startCPUProfile(filepath.Join(cfg.ProfileDir, "bench.pprof"))
		if err != nil {
			fmt.Fprintf(stderr, "zpipes-bench: %v\n", err)
			return 1
		}
		defer stop()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := bench(ctx, cfg, targets, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "zpipes-bench: %v\n", err)
		return 1
	}
	rep.Command = "zpipes-bench " + shellJoin(args)
	if cfg.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		printTable(stdout, rep)
	}
	if !rep.OK {
		for _, r := range rep.Results {
			for _, e := range r.Errors {
				fmt.Fprintf(stderr, "zpipes-bench: %s %s: %s\n", r.Server, r.Case, e)
			}
		}
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (*config, int) {
	fs := flag.NewFlagSet("zpipes-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := &config{}
	sizes := fs.String("sizes", "64,4KiB,64KiB,1MiB", "chunk `sizes` of the sweep, comma-separated (65536, 64KiB, 1MiB, ...)")
	fs.IntVar(&cfg.Writers, "writers", 1, "writers per pipe in the sweep")
	fs.IntVar(&cfg.Pipes, "pipes", 1, "pipes in the sweep")
	fs.IntVar(&cfg.Window, "window", 1000, "commands in flight per connection (all cases but latency)")
	fs.IntVar(&cfg.FaninWriters, "fanin-writers", 4, "writers into one pipe in the fanin case")
	fs.IntVar(&cfg.ManyPipes, "many-pipes", 100, "pipes in the pipes case")
	cfg.MaxInflight = 16 << 20
	fs.Var(units.Size{P: &cfg.MaxInflight}, "max-inflight", "cap on chunk bytes in flight per connection (lowers the window for big chunks)")
	fs.DurationVar(&cfg.Duration, "duration", 2*time.Second, "measured time per case")
	fs.DurationVar(&cfg.Warmup, "warmup", 300*time.Millisecond, "unmeasured load before each case's measured time")
	fs.IntVar(&cfg.Repeat, "repeat", 1, "run each case `n` times, alternating the brokers' order, and report medians")
	cases := fs.String("cases", "sweep,fanin,pipes,latency", "case groups to run, comma-separated")
	fs.BoolVar(&cfg.JSON, "json", false, "print the results as JSON on stdout instead of a table")
	fs.StringVar(&cfg.Endpoint, "endpoint", "", "drive the broker at this `endpoint` (e.g. ipc://@/zpipes/NAME) instead of a child zpipes; no CPU/RSS figures, and no relay unless --relay-endpoint")
	fs.StringVar(&cfg.RelayEndpoint, "relay-endpoint", "", "use the bare relay (or any baseline) already running at this `endpoint`")
	fs.BoolVar(&cfg.NoRelay, "no-relay", false, "skip the bare Go relay on zbroker's transport (no ratios to it)")
	fs.BoolVar(&cfg.NoLibzmqRelay, "no-libzmq-relay", false, "skip the bare C relay on libzmq (no ratios to it)")
	fs.StringVar(&cfg.Client, "client", "go", "load generator: go (zbroker's transport) or libzmq (C, built with the system compiler)")
	fs.IntVar(&cfg.AckEvery, "ack", 0, "also run the memory broker with acknowledging readers (OPEN / pipe / ACK) that acknowledge every `n` chunks, against plain readers (keep n + --window under the broker's 10000 unacknowledged)")
	durable := fs.String("durable", "", "also run durable brokers (--data-dir in $TMPDIR) with these fsync `modes`, comma-separated (always, interval, never), against the memory broker")
	fs.Func("curve-server-key", "dial tcp endpoints (--endpoint, --relay-endpoint) with CURVE, trusting this server public `key` (Z85), with a new client key pair", func(v string) error {
		k, err := zmtp.ParseCurveKey(v)
		if err != nil {
			return err
		}
		cfg.Curve = &zmtp.CurveOptions{ServerKey: k}
		cfg.Curve.PublicKey, cfg.Curve.SecretKey, err = zmtp.NewCurveKeyPair()
		return err
	})
	fs.Func("cluster", "only compare, on embedded JetStream clusters of these `sizes` (e.g. 1,3), zpipes in cluster mode with a bare nats.go publisher and consumer (docs/cluster.md)", func(v string) error {
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > 5 {
				return fmt.Errorf("%q is not a node count from 1 to 5", f)
			}
			cfg.ClusterNodes = append(cfg.ClusterNodes, n)
		}
		return nil
	})
	fs.StringVar(&cfg.ProfileDir, "profile", "", "write CPU profiles into `dir`: one per child broker and case (NN-SERVER-CASE.pprof), and bench.pprof for the load generator")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, 0
		}
		return nil, 2
	}
	bad := func(format string, a ...any) (*config, int) {
		fmt.Fprintf(stderr, "zpipes-bench: "+format+"\n", a...)
		return nil, 2
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	for _, s := range strings.Split(*sizes, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		n, err := units.ParseSize(s)
		if err != nil {
			return bad("--sizes: %v", err)
		}
		if n < 1 || n > 256<<20 {
			return bad("--sizes: %s is out of range (1 B to 256 MiB)", s)
		}
		cfg.Sizes = append(cfg.Sizes, n)
	}
	for _, m := range strings.Split(*durable, ",") {
		if m = strings.TrimSpace(m); m == "" {
			continue
		}
		if _, err := wal.ParseSyncMode(m); err != nil {
			return bad("--durable: %v", err)
		}
		cfg.Durable = append(cfg.Durable, m)
	}
	if cfg.AckEvery < 0 || cfg.AckEvery > 0 && (cfg.Client != "go" || cfg.Endpoint != "") {
		return bad("--ack: a positive count, with the go client and child brokers")
	}
	for _, c := range strings.Split(*cases, ",") {
		c = strings.TrimSpace(c)
		switch c {
		case "":
			continue
		case "sweep", "fanin", "pipes", "latency":
			cfg.Cases = append(cfg.Cases, c)
		default:
			return bad("--cases: unknown case group %q (sweep, fanin, pipes, latency)", c)
		}
	}
	switch {
	case cfg.Writers < 1 || cfg.Pipes < 1 || cfg.Window < 1 || cfg.FaninWriters < 1 || cfg.ManyPipes < 1 || cfg.Repeat < 1:
		return bad("--writers, --pipes, --window, --fanin-writers, --many-pipes and --repeat must be at least 1")
	case cfg.Duration <= 0 || cfg.Warmup < 0:
		return bad("--duration must be positive and --warmup not negative")
	case cfg.MaxInflight < 1:
		return bad("--max-inflight must be positive")
	case len(cfg.Cases) == 0:
		return bad("no cases selected")
	case cfg.Client != "go" && cfg.Client != "libzmq":
		return bad("--client must be go or libzmq")
	}
	return cfg, 0
}

// cases lists the configured cases in run order.
func (cfg *config) cases() []benchCase {
	win := func(size int64, w int) int {
		return int(max(1, min(int64(w), cfg.MaxInflight/size)))
	}
	var out []benchCase
	for _, g := range cfg.Cases {
		switch g {
		case "sweep":
			for _, s := range cfg.Sizes {
				out = append(out, benchCase{"sweep", int(s), cfg.Writers, cfg.Pipes, win(s, cfg.Window)})
			}
		case "fanin":
			out = append(out, benchCase{"fanin", 64, cfg.FaninWriters, 1, win(64, cfg.Window)})
		case "pipes":
			out = append(out, benchCase{"pipes", 64, 1, cfg.ManyPipes, win(64, cfg.Window)})
		case "latency":
			out = append(out, benchCase{"latency", 64, 1, 1, 1})
		}
	}
	return out
}

// bench runs every case against every target, the targets of one case
// back to back, --repeat times in alternating order (relay, zpipes, then
// zpipes, relay, ...) so that drift on a shared machine hits both alike.
func bench(ctx context.Context, cfg *config, targets []target, progress io.Writer) (*report, error) {
	rep := &report{
		Machine:     machineInfo(),
		WarmupSec:   cfg.Warmup.Seconds(),
		DurationSec: cfg.Duration.Seconds(),
		Repeat:      cfg.Repeat,
		Client:      cfg.Client,
		Notes:       cfg.notes,
		OK:          true,
	}
	cases := cfg.cases()
	if len(cfg.Durable) > 0 {
		rate, err := fsyncPerChunkRate(time.Second)
		if err != nil {
			return nil, fmt.Errorf("measuring one fsync per chunk: %w", err)
		}
		rep.FsyncPerChunk = &rate
		fmt.Fprintf(progress, "one write+fsync per 64 B chunk: %s chunks/s\n", siCount(rate))
	}
	total := len(cases) * len(targets) * cfg.Repeat
	runID := rand.Uint32()
	tty := isTerminal(progress)
	step := 0
	for ci, c := range cases {
		runs := make([][]*result, len(targets))
		for round := 0; round < cfg.Repeat; round++ {
			for k := range targets {
				ti := k
				if round%2 == 1 {
					ti = len(targets) - 1 - k
				}
				t := targets[ti]
				step++
				head := fmt.Sprintf("[%d/%d] %s %s", step, total, t.Name, c.label())
				if tty {
					fmt.Fprintf(progress, "\r\x1b[K%s: starting", head)
				}
				profile := ""
				if cfg.ProfileDir != "" {
					profile = filepath.Join(cfg.ProfileDir, fmt.Sprintf("%02d-%s-%s-%s-%dwx%dp.pprof", step, t.Name, c.Group, sizeLabel(int64(c.Size)), c.Writers, c.Pipes))
				}
				r, err := runOne(ctx, cfg, c, t, profile, fmt.Sprintf("zpb-%08x-%d-%d", runID, ci, round), func(rate float64) {
					if tty {
						fmt.Fprintf(progress, "\r\x1b[K%s: %s chunks/s", head, siCount(rate))
					}
				})
				if err != nil {
					if tty {
						fmt.Fprintln(progress)
					}
					return nil, fmt.Errorf("%s %s: %w", t.Name, c.label(), err)
				}
				line := fmt.Sprintf("%s: %s chunks/s, p50 %s", head, siCount(r.ChunksPerSec), usLabel(r.P50us))
				if len(r.Errors) > 0 {
					line += fmt.Sprintf(", %d ERRORS", len(r.Errors))
				}
				if tty {
					fmt.Fprint(progress, "\r\x1b[K")
				}
				fmt.Fprintln(progress, line)
				runs[ti] = append(runs[ti], r)
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
			}
		}
		var memoryRuns []*result
		base := map[string][]*result{}
		for ti, t := range targets {
			if t.Name == "relay" || t.Name == libzmqRelay {
				base[t.Name] = runs[ti]
			}
		}
		for ti, t := range targets {
			agg := aggregate(runs[ti])
			if r := base["relay"]; r != nil && t.Name != "relay" && t.Name != libzmqRelay {
				agg.VsRelay = compareRuns(runs[ti], r)
			}
			if r := base[libzmqRelay]; r != nil && t.Name != libzmqRelay {
				agg.VsLibzmq = compareRuns(runs[ti], r)
			}
			if t.Name == "zpipes" {
				memoryRuns = runs[ti]
			} else if (strings.HasPrefix(t.Name, durablePrefix) || t.Name == ackTarget) && memoryRuns != nil {
				agg.VsMemory = compareRuns(runs[ti], memoryRuns)
			}
			if len(agg.Errors) > 0 {
				rep.OK = false
			}
			rep.Results = append(rep.Results, agg)
		}
	}
	rep.Machine.LoadAvg[1] = loadAvg()
	var fpc float64
	if rep.FsyncPerChunk != nil {
		fpc = *rep.FsyncPerChunk
	}
	rep.Targets = evaluate(rep.Results, fpc)
	return rep, nil
}

// evaluate checks issue 3's targets (against the Go relay) and issue
// 14's (against the libzmq relay) where this run has the figures.
func evaluate(results []*result, fsyncPerChunk float64) []check {
	find := func(server, group string, size, writers, pipes int) *result {
		for _, r := range results {
			if r.Server == server && r.Group == group && r.Size == size && r.Writers == writers && r.Pipes == pipes {
				return r
			}
		}
		return nil
	}
	var out []check
	add := func(c check) {
		if c.AtMost {
			c.Met = c.Value <= c.Limit
		} else {
			c.Met = c.Value >= c.Limit
		}
		out = append(out, c)
	}
	for _, r := range results {
		if r.Server == "relay" || r.Server == libzmqRelay {
			continue
		}
		one := r.Group == "sweep" && r.Writers == 1 && r.Pipes == 1
		// The relay targets are the memory broker's; durable brokers are
		// held to their own, against memory (below).
		durable := strings.HasPrefix(r.Server, durablePrefix) || r.Server == ackTarget
		if v := r.VsRelay; v != nil && !durable {
			switch {
			case one && r.Size == 64 && r.Window >= 1000:
				add(check{Target: "#3 64 B, 1 writer → 1 reader, window 1000: chunk rate ≥ 0.5× relay", Server: r.Server, Value: v.ChunksPerSec, Limit: 0.5})
			case one && r.Size == 64<<10:
				add(check{Target: "#3 64 KiB: bandwidth ≥ 0.8× relay", Server: r.Server, Value: v.MBPerSec, Limit: 0.8})
			case r.Group == "latency":
				add(check{Target: "#3 p50 latency, one chunk in flight: ≤ 2× relay", Server: r.Server, Value: v.P50, Limit: 2, AtMost: true})
			}
		}
		if v := r.VsLibzmq; v != nil && !durable {
			switch {
			case one && r.Size == 64 && r.Window >= 1000:
				add(check{Target: "#14 64 B, window 1000: chunk rate ≥ 1.0× libzmq relay", Server: r.Server, Value: v.ChunksPerSec, Limit: 1})
			case one && (r.Size == 4<<10 || r.Size == 64<<10 || r.Size == 1<<20):
				add(check{Target: fmt.Sprintf("#14 %s, window %d: bandwidth ≥ 1.0× libzmq relay", sizeLabel(int64(r.Size)), r.Window), Server: r.Server, Value: v.MBPerSec, Limit: 1})
			case r.Group == "latency":
				add(check{Target: "#14 p50 latency, one chunk in flight: ≤ 1.0× libzmq relay", Server: r.Server, Value: v.P50, Limit: 1, AtMost: true})
			}
		}
		if v := r.VsMemory; v != nil && r.Group == "sweep" && r.Writers == 1 && r.Pipes == 1 {
			switch {
			case r.Server == durablePrefix+"interval" && r.Size == 64 && r.Window >= 1000:
				add(check{Target: "durable 64 B, window 1000, fsync interval: chunk rate ≥ 0.5× memory", Server: r.Server, Value: v.ChunksPerSec, Limit: 0.5})
			case r.Server == durablePrefix+"interval" && r.Size == 1<<20:
				add(check{Target: "durable 1 MiB, fsync interval: bandwidth ≥ 0.5× memory", Server: r.Server, Value: v.MBPerSec, Limit: 0.5})
			case r.Server == ackTarget && r.Size == 64 && r.Window >= 1000:
				add(check{Target: "#15 64 B, window 1000: acknowledging reader ≥ 0.9× plain reader", Server: r.Server, Value: v.ChunksPerSec, Limit: 0.9})
			}
		}
		if r.Server == durablePrefix+"always" && r.Group == "sweep" && r.Size == 64 && r.Writers == 1 && r.Pipes == 1 && r.Window >= 1000 && fsyncPerChunk > 0 {
			add(check{Target: "durable 64 B, window 1000, fsync always: chunk rate ≥ 25× one fsync per chunk", Server: r.Server, Value: r.ChunksPerSec / fsyncPerChunk, Limit: 25})
		}
		if r.Group != "fanin" && r.Group != "pipes" {
			continue
		}
		single := find(r.Server, "sweep", r.Size, 1, 1)
		if single == nil || single.ChunksPerSec == 0 {
			continue
		}
		c := check{Server: r.Server, Value: r.ChunksPerSec / single.ChunksPerSec, Limit: 0.7}
		if r.Group == "fanin" {
			c.Target = fmt.Sprintf("#3 %d writers → 1 reader: aggregate ≥ 0.7× single pipe", r.Writers)
		} else {
			c.Target = fmt.Sprintf("#3 %d pipes × (1 writer, 1 reader): aggregate ≥ 0.7× single pipe", r.Pipes)
		}
		rr, rs := find("relay", r.Group, r.Size, r.Writers, r.Pipes), find("relay", "sweep", r.Size, 1, 1)
		if rr != nil && rs != nil && rs.ChunksPerSec > 0 {
			c.Relay = ptr(rr.ChunksPerSec / rs.ChunksPerSec)
		}
		add(c)
	}
	return out
}

func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var v float64
	fmt.Sscan(string(b), &v)
	return v
}

// aggregate folds the runs of one case on one target: rates, latencies
// and CPU figures are medians, peak RSS the largest, counts are summed.
func aggregate(runs []*result) *result {
	if len(runs) == 1 {
		return runs[0]
	}
	a := *runs[0]
	a.Errors = nil
	a.Chunks, a.Seconds, a.LatencySamples, a.Written, a.Read, a.Fillers = 0, 0, 0, 0, 0, 0
	pick := func(f func(*result) float64) float64 {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = f(r)
		}
		return median(v)
	}
	pickPtr := func(f func(*result) *float64) *float64 {
		var v []float64
		for _, r := range runs {
			if p := f(r); p != nil {
				v = append(v, *p)
			}
		}
		if len(v) < len(runs) {
			return nil
		}
		return ptr(median(v))
	}
	for i, r := range runs {
		a.Chunks += r.Chunks
		a.Seconds += r.Seconds
		a.LatencySamples += r.LatencySamples
		a.Written += r.Written
		a.Read += r.Read
		a.Fillers += r.Fillers
		a.MaxUs = max(a.MaxUs, r.MaxUs)
		for _, e := range r.Errors {
			a.Errors = append(a.Errors, fmt.Sprintf("run %d: %s", i+1, e))
		}
		if r.PeakRSS == nil {
			a.PeakRSS = nil
		} else if a.PeakRSS != nil {
			a.PeakRSS = ptr(max(*a.PeakRSS, *r.PeakRSS))
		}
		a.Runs = append(a.Runs, runFigures{r.ChunksPerSec, r.P50us, r.P99us})
	}
	a.ChunksPerSec = pick(func(r *result) float64 { return r.ChunksPerSec })
	a.MBPerSec = pick(func(r *result) float64 { return r.MBPerSec })
	a.P50us = pick(func(r *result) float64 { return r.P50us })
	a.P99us = pick(func(r *result) float64 { return r.P99us })
	a.CPUSeconds = pickPtr(func(r *result) *float64 { return r.CPUSeconds })
	a.CPUusPerChunk = pickPtr(func(r *result) *float64 { return r.CPUusPerChunk })
	a.GenCPUSeconds = pickPtr(func(r *result) *float64 { return r.GenCPUSeconds })
	return &a
}

// compareRuns gives the median, over the rounds, of the ratios between
// the two runs of a round (which ran back to back).
func compareRuns(runs, base []*result) *ratios {
	n := min(len(runs), len(base))
	all := make([]*ratios, n)
	for i := range all {
		all[i] = compare(runs[i], base[i])
	}
	if n == 1 {
		return all[0]
	}
	pick := func(f func(*ratios) float64) float64 {
		v := make([]float64, n)
		for i, r := range all {
			v[i] = f(r)
		}
		return median(v)
	}
	pickPtr := func(f func(*ratios) *float64) *float64 {
		var v []float64
		for _, r := range all {
			if p := f(r); p != nil {
				v = append(v, *p)
			}
		}
		if len(v) < n {
			return nil
		}
		return ptr(median(v))
	}
	return &ratios{
		ChunksPerSec:  pick(func(r *ratios) float64 { return r.ChunksPerSec }),
		MBPerSec:      pick(func(r *ratios) float64 { return r.MBPerSec }),
		P50:           pick(func(r *ratios) float64 { return r.P50 }),
		P99:           pick(func(r *ratios) float64 { return r.P99 }),
		CPUusPerChunk: pickPtr(func(r *ratios) *float64 { return r.CPUusPerChunk }),
		PeakRSS:       pickPtr(func(r *ratios) *float64 { return r.PeakRSS }),
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func runOne(ctx context.Context, cfg *config, c benchCase, t target, profile, prefix string, progress func(float64)) (*result, error) {
	inst, err := t.Start(profile)
	if err != nil {
		return nil, err
	}
	defer inst.Stop()
	pid, gen := inst.PID(), os.Getpid()
	var cpu0, cpu1, gen0, gen1 float64
	var cpuErr, genErr error
	samples := 0 // both ends of the window, unless the run was cut short
	sample := func(cpu, genCPU *float64) {
		samples++
		var err error
		if pid != 0 {
			if *cpu, err = cpuSeconds(pid); err != nil {
				cpuErr = err
			}
		}
		if *genCPU, err = cpuSeconds(gen); err != nil {
			genErr = err
		}
	}
	lc := loadConfig{
		Endpoint:    inst.Endpoint(),
		Size:        c.Size,
		Writers:     c.Writers,
		Pipes:       c.Pipes,
		Window:      c.Window,
		Warmup:      cfg.Warmup,
		Duration:    cfg.Duration,
		Prefix:      prefix,
		Curve:       cfg.Curve,
		WindowStart: func() { sample(&cpu0, &gen0) },
		WindowEnd:   func() { sample(&cpu1, &gen1) },
		Generator:   func(p int) { gen = p },
		Progress:    progress,
	}
	if t.Name == ackTarget {
		lc.AckEvery = cfg.AckEvery
	}
	var lr *loadResult
	if cfg.Client == "libzmq" {
		lr, err = runLoadC(ctx, cfg.libzmq.Load, lc)
	} else {
		lr, err = runLoad(ctx, lc)
	}
	if d, ok := inst.(interface{ Died(time.Duration) error }); ok {
		// A broker that dies takes its connections with it: give its
		// exit a moment to be seen when the run went wrong.
		wait := time.Duration(0)
		if err != nil || len(lr.Errors) > 0 {
			wait = time.Second
		}
		if died := d.Died(wait); died != nil {
			// Whatever else went wrong followed from that.
			if err != nil {
				return nil, fmt.Errorf("%v (%v)", died, err)
			}
			lr.Errors = append([]string{died.Error()}, lr.Errors...)
		}
	}
	if err != nil {
		return nil, err
	}
	r := &result{
		Case:           c.label(),
		benchCase:      c,
		Server:         t.Name,
		Endpoint:       inst.Endpoint(),
		Chunks:         lr.Chunks,
		Seconds:        lr.Seconds,
		ChunksPerSec:   float64(lr.Chunks) / lr.Seconds,
		MBPerSec:       float64(lr.Chunks) * float64(c.Size) / lr.Seconds / 1e6,
		P50us:          float64(lr.Latency.quantile(0.50)) / 1e3,
		P99us:          float64(lr.Latency.quantile(0.99)) / 1e3,
		MaxUs:          float64(lr.Latency.max) / 1e3,
		LatencySamples: lr.Latency.n,
		Written:        lr.Written,
		Read:           lr.Read,
		Fillers:        lr.Fillers,
		Errors:         lr.Errors,
	}
	// Zero is a measurement too: a generator starved of CPU, or one that
	// waits on the broker, may not use a 10 ms tick in a short window.
	if samples == 2 && genErr == nil {
		r.GenCPUSeconds = ptr(gen1 - gen0)
	}
	if pid != 0 && samples == 2 && cpuErr == nil {
		r.CPUSeconds = ptr(cpu1 - cpu0)
		if lr.Chunks > 0 {
			r.CPUusPerChunk = ptr((cpu1 - cpu0) / float64(lr.Chunks) * 1e6)
		}
	}
	if pid != 0 {
		if rss, err := peakRSS(pid); err == nil {
			r.PeakRSS = &rss
		}
	}
	if f, ok := inst.(interface {
		Fsyncs() (uint64, float64, bool)
	}); ok {
		inst.Stop()
		if n, secs, ok := f.Fsyncs(); ok && secs > 0 {
			r.FsyncsPerSec = ptr(float64(n) / secs)
		}
	}
	return r, nil
}

func compare(r, base *result) *ratios {
	div := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	v := &ratios{
		ChunksPerSec: div(r.ChunksPerSec, base.ChunksPerSec),
		MBPerSec:     div(r.MBPerSec, base.MBPerSec),
		P50:          div(r.P50us, base.P50us),
		P99:          div(r.P99us, base.P99us),
	}
	if r.CPUusPerChunk != nil && base.CPUusPerChunk != nil {
		v.CPUusPerChunk = ptr(div(*r.CPUusPerChunk, *base.CPUusPerChunk))
	}
	if r.PeakRSS != nil && base.PeakRSS != nil {
		v.PeakRSS = ptr(div(float64(*r.PeakRSS), float64(*base.PeakRSS)))
	}
	return v
}

func ptr[T any](v T) *T { return &v }

// printTable prints the report as a table, without trailing blanks.
func printTable(out io.Writer, rep *report) {
	var buf bytes.Buffer
	writeTable(&buf, rep)
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		if line == "" {
			continue
		}
		io.WriteString(out, strings.TrimRight(line, " \n")+"\n")
	}
}

func writeTable(w io.Writer, rep *report) {
	fmt.Fprintf(w, "machine: %d CPUs, %s, %s, %s; %gs measured per case after %gs warmup",
		rep.Machine.CPUs, orDash(rep.Machine.CPUModel), rep.Machine.Kernel, rep.Machine.GoVersion, rep.DurationSec, rep.WarmupSec)
	if rep.Repeat > 1 {
		fmt.Fprintf(w, ", %d runs each: medians, and ratios are medians of back-to-back pairs", rep.Repeat)
	}
	fmt.Fprintf(w, "; load average %.2f at start, %.2f at end\n", rep.Machine.LoadAvg[0], rep.Machine.LoadAvg[1])
	client := "Go, on zbroker's transport"
	if rep.Client == "libzmq" {
		client = "C, on libzmq"
	}
	fmt.Fprintf(w, "load generator: %s; relay = bare Go relay on zbroker's transport, %s = bare C relay on libzmq\n", client, libzmqRelay)
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintf(w, "command: %s\n", rep.Command)
	if rep.Machine.Revision != "" {
		fmt.Fprintf(w, "revision: %s\n", rep.Machine.Revision)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tsize\tw×p\twin\tserver\tchunks/s\tMB/s\tp50\tp99\tcpu s\tcpu/chunk\tpeak RSS\tgen cpu s\t")
	x := func(v float64) string { return fmt.Sprintf("%.2f×", v) }
	xp := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return x(*v)
	}
	for _, r := range rep.Results {
		cpu, per, rss, gen := "-", "-", "-", "-"
		if r.CPUSeconds != nil {
			cpu = fmt.Sprintf("%.2f", *r.CPUSeconds)
		}
		if r.CPUusPerChunk != nil {
			per = usLabel(*r.CPUusPerChunk)
		}
		if r.PeakRSS != nil {
			rss = fmt.Sprintf("%.1fMiB", float64(*r.PeakRSS)/(1<<20))
		}
		if r.GenCPUSeconds != nil {
			gen = fmt.Sprintf("%.2f", *r.GenCPUSeconds)
		}
		p50, p99 := "-", "-"
		if r.LatencySamples > 0 {
			p50, p99 = usLabel(r.P50us), usLabel(r.P99us)
		}
		server := r.Server
		if len(r.Errors) > 0 {
			server += "(ERR)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%dw×%dp\t%d\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			r.Group, sizeLabel(int64(r.Size)), r.Writers, r.Pipes, r.Window, server,
			siCount(r.ChunksPerSec), r.MBPerSec, p50, p99, cpu, per, rss, gen)
		if v := r.VsMemory; v != nil {
			fs := "-"
			if r.FsyncsPerSec != nil {
				fs = fmt.Sprintf("%.0f fsyncs/s", *r.FsyncsPerSec)
			}
			fmt.Fprintf(tw, "\t\t\t\t%s/memory\t%s\t%s\t%s\t%s\t\t%s\t%s\t%s\t\n",
				r.Server, x(v.ChunksPerSec), x(v.MBPerSec), x(v.P50), x(v.P99), xp(v.CPUusPerChunk), xp(v.PeakRSS), fs)
		}
		for _, b := range []struct {
			name string
			v    *ratios
		}{{"relay", r.VsRelay}, {libzmqRelay, r.VsLibzmq}} {
			v := b.v
			if v == nil {
				continue
			}
			p50x, p99x := "-", "-"
			if r.LatencySamples > 0 {
				p50x, p99x = x(v.P50), x(v.P99)
			}
			fmt.Fprintf(tw, "\t\t\t\t%s/%s\t%s\t%s\t%s\t%s\t\t%s\t%s\t\t\n",
				r.Server, b.name, x(v.ChunksPerSec), x(v.MBPerSec), p50x, p99x, xp(v.CPUusPerChunk), xp(v.PeakRSS))
		}
	}
	tw.Flush()
	if rep.FsyncPerChunk != nil {
		fmt.Fprintf(w, "\none write+fsync per 64 B chunk in $TMPDIR: %s chunks/s\n", siCount(*rep.FsyncPerChunk))
	}
	if len(rep.Targets) > 0 {
		fmt.Fprintln(w, "\ntargets (issue #3 against the Go relay, #14 against the libzmq relay):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, c := range rep.Targets {
			met := "met"
			if !c.Met {
				met = "MISSED"
			}
			ctx := ""
			if c.Relay != nil {
				ctx = fmt.Sprintf("(relay: %.2f×)", *c.Relay)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%.3f×\t%s\t%s\n", c.Target, c.Server, c.Value, met, ctx)
		}
		tw.Flush()
	}
	if !rep.OK {
		fmt.Fprintln(w, "\nERRORS: some cases failed validation (see stderr); their figures are not to be trusted.")
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// siCount prints a rate as 812, 81.2k, 1.23M.
func siCount(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// usLabel prints a duration given in µs with a fitting unit.
func usLabel(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%.2fs", us/1e6)
	case us >= 1e4:
		return fmt.Sprintf("%.1fms", us/1e3)
	case us >= 1e3:
		return fmt.Sprintf("%.2fms", us/1e3)
	case us >= 10:
		return fmt.Sprintf("%.0fµs", us)
	}
	return fmt.Sprintf("%.2fµs", us)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func machineInfo() machine {
	m := machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	m.LoadAvg[0] = loadAvg()
	m.Revision = revision()
	return m
}

// revision reads the git revision stamped by go build, or asks git (go
// run does not stamp it).
func revision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", ""
		for _, kv := range bi.Settings {
			switch {
			case kv.Key == "vcs.revision":
				rev = kv.Value
			case kv.Key == "vcs.modified" && kv.Value == "true":
				dirty = "+dirty"
			}
		}
		if rev != "" {
			return rev[:min(len(rev), 12)] + dirty
		}
	}
	out, err := exec.Command("git", "describe", "--always", "--dirty=+dirty", "--abbrev=12").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.TrimSpace(strings.Join(out, " "))
}

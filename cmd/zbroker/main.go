// Command zbroker runs a zbroker: a ZeroMQ broker hosting the zpipes
// service on ipc://@/zpipes/NAME, Majordomo on ipc://@/majordomo/NAME and
// Clone on ipc://@/clone/NAME/....
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/zbroker/zbroker/clone"
	"github.com/zbroker/zbroker/internal/units"
	"github.com/zbroker/zbroker/majordomo"
	"github.com/zbroker/zbroker/zmtp"
	"github.com/zbroker/zbroker/zpipes"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

const usage = `usage: zbroker [flags] [name]

Runs the broker named NAME (default "default"), hosting three services:
  zpipes     named pipes, on ipc://@/zpipes/NAME
  Majordomo  service RPC (MDP 0.1 and 0.2, MMI), on ipc://@/majordomo/NAME
  Clone      shared key-value state (CHP), on ipc://@/clone/NAME/{snapshot,updates,collector}
At most one broker of a given name runs on a machine. TERM or INT (Ctrl-C)
stops it; queued chunks, requests and keys are held in memory only and are
discarded then.

Flags (also settable in a --config file, one "flag value" per line):
`

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("zbroker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var zp zpipes.Options
	var mdp majordomo.Options
	verbose := fs.Bool("v", false, "verbose: log every connection and refused command")
	config := fs.String("config", "", "read flags from `file` first (command line wins)")
	noZpipes := fs.Bool("no-zpipes", false, "do not serve zpipes")
	noMajordomo := fs.Bool("no-majordomo", false, "do not serve Majordomo")
	noClone := fs.Bool("no-clone", false, "do not serve Clone")

	fs.StringVar(&zp.Endpoint, "endpoint", "", "serve zpipes on this `endpoint` instead of ipc://@/zpipes/NAME (ipc://PATH, ipc://@NAME, tcp://HOST:PORT)")
	zp.PipeLimit, zp.TotalLimit, zp.MaxChunkSize = 64<<20, 1<<30, 256<<20
	fs.Var(units.Size{P: &zp.PipeLimit}, "pipe-limit", "bytes queued per pipe before writers are held back")
	fs.Var(units.Size{P: &zp.TotalLimit}, "total-limit", "bytes queued in all pipes before writers are held back")
	fs.Var(units.Size{P: &zp.MaxChunkSize}, "max-chunk", "largest chunk accepted; a client sending more is disconnected")
	fs.IntVar(&zp.MaxPendingReplies, "max-pending", 1000, "replies one zpipes client may be owed before its commands stop being read")

	fs.StringVar(&mdp.Endpoint, "mdp-endpoint", "", "serve Majordomo on this `endpoint` instead of ipc://@/majordomo/NAME")
	fs.DurationVar(&mdp.HeartbeatInterval, "mdp-heartbeat", 2500*time.Millisecond, "heartbeat interval between the broker and Majordomo workers")
	fs.IntVar(&mdp.HeartbeatLiveness, "mdp-liveness", 3, "silent heartbeat intervals before a worker is expired")
	fs.DurationVar(&mdp.RequestTimeout, "mdp-request-timeout", 30*time.Second, "how long a request waits for a worker before a 504 failure reply")
	fs.IntVar(&mdp.RequestQueueLimit, "mdp-queue-limit", 10000, "requests waiting per service before new ones get a 503 failure reply")
	var kv clone.Options
	fs.StringVar(&kv.SnapshotEndpoint, "clone-snapshot", "", "serve Clone snapshots (ICANHAZ?) on this `endpoint` instead of ipc://@/clone/NAME/snapshot")
	fs.StringVar(&kv.PublisherEndpoint, "clone-updates", "", "publish Clone updates on this `endpoint` instead of ipc://@/clone/NAME/updates")
	fs.StringVar(&kv.CollectorEndpoint, "clone-collector", "", "collect Clone updates on this `endpoint` instead of ipc://@/clone/NAME/collector")
	fs.DurationVar(&kv.HeartbeatInterval, "clone-heartbeat", time.Second, "how often Clone publishes HUGZ")
	kv.MaxValueSize = 16 << 20
	fs.Var(units.Size{P: &kv.MaxValueSize}, "clone-max-value", "largest Clone value accepted; a client sending more is disconnected")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *config != "" {
		if err := applyConfigFile(fs, *config); err != nil {
			fmt.Fprintf(stderr, "zbroker: %v\n", err)
			return 2
		}
		fs.Parse(args) // the command line overrides the file
	}
	name := "default"
	switch fs.NArg() {
	case 0:
	case 1:
		name = fs.Arg(0)
	default:
		fs.Usage()
		return 2
	}
	if *noZpipes && *noMajordomo && *noClone {
		fmt.Fprintln(stderr, "zbroker: --no-zpipes, --no-majordomo and --no-clone leave nothing to serve")
		return 2
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	zp.Name, zp.Logger = name, log
	mdp.Name, mdp.Logger = name, log
	kv.Name, kv.Logger = name, log

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Each started service leaves a function that stops it and says what
	// it discarded; a failed start stops the ones already running.
	var running []func() []any
	stopAll := func() []any {
		var attrs []any
		for i := len(running) - 1; i >= 0; i-- {
			attrs = append(attrs, running[i]()...)
		}
		return attrs
	}
	started := []any{"name", name}
	if !*noZpipes {
		srv, err := zpipes.Start(zp)
		if err != nil {
			return startFailed(stderr, name, err, stopAll)
		}
		running = append(running, func() []any {
			st := srv.Close()
			return []any{"discarded_chunks", st.Chunks, "discarded_bytes", st.QueuedBytes,
				"discarded_held_writes", st.Stalled, "pipes", st.Pipes}
		})
		started = append(started, "zpipes", srv.Endpoint(),
			"pipe_limit", units.FormatSize(zp.PipeLimit), "total_limit", units.FormatSize(zp.TotalLimit))
	}
	if !*noMajordomo {
		srv, err := majordomo.Start(mdp)
		if err != nil {
			return startFailed(stderr, name, err, stopAll)
		}
		running = append(running, func() []any {
			st := srv.Close()
			return []any{"discarded_requests", st.Queued + st.InFlight}
		})
		started = append(started, "majordomo", srv.Endpoint())
	}
	if !*noClone {
		srv, err := clone.Start(kv)
		if err != nil {
			return startFailed(stderr, name, err, stopAll)
		}
		running = append(running, func() []any {
			st := srv.Close()
			return []any{"discarded_keys", st.Keys, "clone_sequence", st.Sequence}
		})
		ep := srv.Endpoints()
		started = append(started, "clone_snapshot", ep.Snapshot, "clone_updates", ep.Publisher, "clone_collector", ep.Collector)
	}
	log.Info("zbroker started", started...)
	<-ctx.Done()
	log.Info("zbroker stopped", stopAll()...)
	return 0
}

func startFailed(stderr io.Writer, name string, err error, stopAll func() []any) int {
	stopAll()
	if errors.Is(err, zmtp.ErrAddrInUse) {
		fmt.Fprintf(stderr, "zbroker: a broker named %q is already running here (%v)\n", name, err)
	} else {
		fmt.Fprintf(stderr, "zbroker: %v\n", err)
	}
	return 1
}

// Command zbroker runs a zbroker: a ZeroMQ broker hosting the zpipes
// service on ipc://@/zpipes/NAME and Majordomo on ipc://@/majordomo/NAME.
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

	"github.com/zbroker/zbroker/internal/units"
	"github.com/zbroker/zbroker/majordomo"
	"github.com/zbroker/zbroker/zmtp"
	"github.com/zbroker/zbroker/zpipes"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

const usage = `usage: zbroker [flags] [name]

Runs the broker named NAME (default "default"), hosting two services:
  zpipes     named pipes, on ipc://@/zpipes/NAME
  Majordomo  service RPC (MDP 0.1 and 0.2, MMI), on ipc://@/majordomo/NAME
At most one broker of a given name runs on a machine. TERM or INT (Ctrl-C)
stops it; queued chunks and requests are held in memory only and are
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
	if *noZpipes && *noMajordomo {
		fmt.Fprintln(stderr, "zbroker: --no-zpipes and --no-majordomo leave nothing to serve")
		return 2
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	zp.Name, zp.Logger = name, log
	mdp.Name, mdp.Logger = name, log

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var pipes *zpipes.Server
	var rpc *majordomo.Server
	started := []any{"name", name}
	var err error
	if !*noZpipes {
		if pipes, err = zpipes.Start(zp); err != nil {
			return startFailed(stderr, name, err)
		}
		started = append(started, "zpipes", pipes.Endpoint(),
			"pipe_limit", units.FormatSize(zp.PipeLimit), "total_limit", units.FormatSize(zp.TotalLimit))
	}
	if !*noMajordomo {
		if rpc, err = majordomo.Start(mdp); err != nil {
			if pipes != nil {
				pipes.Close()
			}
			return startFailed(stderr, name, err)
		}
		started = append(started, "majordomo", rpc.Endpoint())
	}
	log.Info("zbroker started", started...)
	<-ctx.Done()
	stopped := []any{}
	if pipes != nil {
		st := pipes.Close()
		stopped = append(stopped, "discarded_chunks", st.Chunks, "discarded_bytes", st.QueuedBytes,
			"discarded_held_writes", st.Stalled, "pipes", st.Pipes)
	}
	if rpc != nil {
		st := rpc.Close()
		stopped = append(stopped, "discarded_requests", st.Queued+st.InFlight)
	}
	log.Info("zbroker stopped", stopped...)
	return 0
}

func startFailed(stderr io.Writer, name string, err error) int {
	if errors.Is(err, zmtp.ErrAddrInUse) {
		fmt.Fprintf(stderr, "zbroker: a broker named %q is already running here (%v)\n", name, err)
	} else {
		fmt.Fprintf(stderr, "zbroker: %v\n", err)
	}
	return 1
}

// Command zbroker runs a zbroker: a ZeroMQ broker hosting the zpipes
// service on ipc://@/zpipes/NAME.
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

	"github.com/zbroker/zbroker/internal/units"
	"github.com/zbroker/zbroker/zmtp"
	"github.com/zbroker/zbroker/zpipes"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

const usage = `usage: zbroker [flags] [name]

Runs the broker named NAME (default "default"). zpipes is served on
ipc://@/zpipes/NAME, an abstract IPC endpoint. At most one broker of a given
name runs on a machine. TERM or INT (Ctrl-C) stops it; queued chunks are held
in memory only and are discarded then.

Flags (also settable in a --config file, one "flag value" per line):
`

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("zbroker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts zpipes.Options
	verbose := fs.Bool("v", false, "verbose: log every connection and refused command")
	config := fs.String("config", "", "read flags from `file` first (command line wins)")
	fs.StringVar(&opts.Endpoint, "endpoint", "", "serve zpipes on this `endpoint` instead of ipc://@/zpipes/NAME (ipc://PATH, ipc://@NAME, tcp://HOST:PORT)")
	opts.PipeLimit, opts.TotalLimit, opts.MaxChunkSize = 64<<20, 1<<30, 256<<20
	fs.Var(units.Size{P: &opts.PipeLimit}, "pipe-limit", "bytes queued per pipe before writers are held back")
	fs.Var(units.Size{P: &opts.TotalLimit}, "total-limit", "bytes queued in all pipes before writers are held back")
	fs.Var(units.Size{P: &opts.MaxChunkSize}, "max-chunk", "largest chunk accepted; a client sending more is disconnected")
	fs.IntVar(&opts.MaxPendingReplies, "max-pending", 1000, "replies one client may have owed before its commands stop being read")
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
	switch fs.NArg() {
	case 0:
		opts.Name = "default"
	case 1:
		opts.Name = fs.Arg(0)
	default:
		fs.Usage()
		return 2
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	opts.Logger = log

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := zpipes.Start(opts)
	if errors.Is(err, zmtp.ErrAddrInUse) {
		fmt.Fprintf(stderr, "zbroker: a broker named %q is already running here (%v)\n", opts.Name, err)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "zbroker: %v\n", err)
		return 1
	}
	log.Info("zbroker started", "name", opts.Name, "zpipes", srv.Endpoint(),
		"pipe_limit", units.FormatSize(opts.PipeLimit), "total_limit", units.FormatSize(opts.TotalLimit))
	<-ctx.Done()
	st := srv.Close()
	log.Info("zbroker stopped", "discarded_chunks", st.Chunks, "discarded_bytes", st.QueuedBytes,
		"discarded_held_writes", st.Stalled, "pipes", st.Pipes)
	return 0
}

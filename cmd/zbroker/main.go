// Command zbroker runs a zbroker: a ZeroMQ broker hosting the zpipes
// service on ipc://@/zpipes/NAME, Majordomo on ipc://@/majordomo/NAME and
// Clone on ipc://@/clone/NAME/....
package main

import (
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
	"github.com/zbroker/zbroker/internal/cli"
	"github.com/zbroker/zbroker/internal/observe"
	"github.com/zbroker/zbroker/internal/sdnotify"
	"github.com/zbroker/zbroker/internal/units"
	"github.com/zbroker/zbroker/majordomo"
	"github.com/zbroker/zbroker/zmtp"
	"github.com/zbroker/zbroker/zpipes"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: zbroker [flags] [NAME]   (or -b NAME)
       zbroker status [NAME]   (see zbroker status --help)
       zbroker keygen [--secret-file FILE]
       zbroker help | --help | --version

Runs the broker named NAME (default "default"), hosting three services:
  zpipes     named pipes, on ipc://@/zpipes/NAME
  Majordomo  service RPC (MDP 0.1 and 0.2, MMI), on ipc://@/majordomo/NAME
  Clone      shared key-value state (CHP), on ipc://@/clone/NAME/{snapshot,updates,collector}
At most one broker of a given name runs on a machine. It logs "zbroker
ready" once every endpoint is bound (and sends READY=1 to $NOTIFY_SOCKET
under systemd). TERM or INT (Ctrl-C) stops it; HUP reloads the settings
that can change while it runs (log level, limits) and logs what changed.

Settings, strongest first: the command line; ZBROKER_* environment
variables (--pipe-limit is ZBROKER_PIPE_LIMIT); the --config file, one
"flag value" per line ("flag" alone sets a boolean, # starts a comment),
e.g.
  name      prod
  pipe-limit 128MiB   # per pipe
  log-format json

Flags:
`

// settings are the flags run itself uses beyond the services' options.
type settings struct {
	name        string
	config      string
	verbose     bool
	logLevel    string
	logFormat   string
	noZpipes    bool
	noMajordomo bool
	noClone     bool
}

// broker holds everything the flags fill in.
type broker struct {
	settings
	zp  zpipes.Options
	mdp majordomo.Options
	kv  clone.Options
}

func (b *broker) flags(fs *flag.FlagSet) {
	fs.StringVar(&b.name, "name", "default", "the broker's `name` (the NAME argument overrides it)")
	cli.BrokerFlag(fs, &b.name) // -b, --broker: --name's spelling in the other tools
	fs.StringVar(&b.config, "config", "", "read settings from `file` (see above)")
	fs.BoolVar(&b.verbose, "v", false, "verbose: same as --log-level debug (log every connection and refused command)")
	fs.StringVar(&b.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&b.logFormat, "log-format", "text", "log `format`: text (key=value) or json")
	fs.BoolVar(&b.noZpipes, "no-zpipes", false, "do not serve zpipes")
	fs.BoolVar(&b.noMajordomo, "no-majordomo", false, "do not serve Majordomo")
	fs.BoolVar(&b.noClone, "no-clone", false, "do not serve Clone")

	zp := &b.zp
	fs.StringVar(&zp.Endpoint, "endpoint", "", "serve zpipes on this `endpoint` instead of ipc://@/zpipes/NAME (ipc://PATH, ipc://@NAME, tcp://HOST:PORT)")
	zp.PipeLimit, zp.TotalLimit, zp.MaxChunkSize = 64<<20, 1<<30, 256<<20
	fs.Var(units.Size{P: &zp.PipeLimit}, "pipe-limit", "bytes queued per pipe before writers are held back (0: the default; reloadable)")
	fs.Var(units.Size{P: &zp.TotalLimit}, "total-limit", "bytes queued in all pipes before writers are held back (0: the default; reloadable)")
	fs.Var(units.Size{P: &zp.MaxChunkSize}, "max-chunk", "largest chunk accepted; a client sending more is disconnected")
	zp.PendingLimit = 64 << 20
	fs.Var(units.Size{P: &zp.PendingLimit}, "pending-limit", "bytes one zpipes client's unsent replies may hold (256 per reply owed, plus chunks waiting their turn) before its commands stop being read")
	fs.IntVar(&zp.MaxPipesPerConnection, "max-pipes-per-conn", 1024, "pipes one zpipes connection may have open; more OPENs get an ERROR")
	acksFlags(fs, zp)

	mdp := &b.mdp
	fs.StringVar(&mdp.Endpoint, "mdp-endpoint", "", "serve Majordomo on this `endpoint` instead of ipc://@/majordomo/NAME")
	fs.DurationVar(&mdp.HeartbeatInterval, "mdp-heartbeat", 2500*time.Millisecond, "heartbeat interval between the broker and Majordomo workers")
	fs.IntVar(&mdp.HeartbeatLiveness, "mdp-liveness", 3, "silent heartbeat intervals before a worker is expired")
	fs.DurationVar(&mdp.RequestTimeout, "mdp-request-timeout", 30*time.Second, "how long a request waits for a worker before a 504 failure reply")
	fs.IntVar(&mdp.RequestQueueLimit, "mdp-queue-limit", 10000, "requests waiting per service before new ones get a 503 failure reply (reloadable)")
	mdp.ServiceQueueBytes, mdp.ClientQueueBytes = 256<<20, 64<<20
	fs.Var(units.Size{P: &mdp.ServiceQueueBytes}, "mdp-service-queue-bytes", "bytes of requests waiting per service before new ones get a 503 failure reply")
	fs.Var(units.Size{P: &mdp.ClientQueueBytes}, "mdp-client-queue-bytes", "bytes of one client's requests waiting for workers before its new ones get a 503 failure reply")
	majordomoFlags(fs, mdp)

	kv := &b.kv
	fs.StringVar(&kv.SnapshotEndpoint, "clone-snapshot", "", "serve Clone snapshots (ICANHAZ?) on this `endpoint` instead of ipc://@/clone/NAME/snapshot")
	fs.StringVar(&kv.PublisherEndpoint, "clone-updates", "", "publish Clone updates on this `endpoint` instead of ipc://@/clone/NAME/updates")
	fs.StringVar(&kv.CollectorEndpoint, "clone-collector", "", "collect Clone updates on this `endpoint` instead of ipc://@/clone/NAME/collector")
	fs.DurationVar(&kv.HeartbeatInterval, "clone-heartbeat", time.Second, "how often Clone publishes HUGZ")
	kv.MaxValueSize = 16 << 20
	fs.Var(units.Size{P: &kv.MaxValueSize}, "clone-max-value", "largest Clone value accepted; a client sending more is disconnected")
	fs.IntVar(&kv.MaxKeys, "clone-max-keys", 1_000_000, "keys the Clone map may hold; updates adding more are refused and logged")
	kv.MaxBytes = 1 << 30
	fs.Var(units.Size{P: &kv.MaxBytes}, "clone-max-bytes", "bytes the Clone map may hold (keys, values, properties, 128 per key); updates past it are refused and logged")
}

// parse reads the command line, then the environment and the config file,
// and checks the result. It returns which flags the command line set and
// the text of each setting the environment or the file gave.
func (b *broker) parse(fs *flag.FlagSet, args []string) (map[string]bool, map[string]string, error) {
	words, err := cli.Parse(fs, args)
	if err != nil {
		return nil, nil, err
	}
	cmdline := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { cmdline[f.Name] = true })
	if cmdline["b"] || cmdline["broker"] {
		cmdline["name"] = true // the environment and the file must not override it
	}
	switch {
	case len(words) == 1 && words[0] == "help":
		return nil, nil, flag.ErrHelp
	case len(words) > 1:
		return nil, nil, cli.Usagef("one broker name at most, got %q", words)
	}
	raw, err := fromEnvAndFile(fs, cmdline, &b.config, true)
	if err != nil {
		return nil, nil, &cli.UsageError{Msg: err.Error()}
	}
	if len(words) == 1 {
		b.name = words[0]
	}
	if _, err := newLogger(io.Discard, b.logFormat, new(slog.LevelVar), b.logLevel, b.verbose); err != nil {
		return nil, nil, cli.Usagef("%v", err)
	}
	switch {
	case b.name == "":
		return nil, nil, cli.Usagef("empty broker name")
	case b.noZpipes && b.noMajordomo && b.noClone:
		return nil, nil, cli.Usagef("--no-zpipes, --no-majordomo and --no-clone leave nothing to serve")
	}
	return cmdline, raw, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "status" {
		return runStatus(args[1:], stdout, stderr)
	}
	// First, so that a SIGHUP sent while starting (a reload racing the
	// start) cannot kill the broker.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(signals)

	if len(args) > 0 && args[0] == "keygen" {
		return keygen(args[1:], stdout, stderr)
	}
	cmd := &cli.Command{Name: "zbroker", Stdout: stdout, Stderr: stderr}
	fs := cmd.FlagSet()
	var b broker
	b.flags(fs)
	// Other files of this package register their flags here.
	sec := registerSecurityFlags(fs)
	store := registerStorageFlags(fs)
	cl := registerClusterFlags(fs, store)
	curve := registerCurveFlags(fs)
	mem := registerMemoryFlags(fs)
	ps := registerProcsFlags(fs)
	var obs observeSettings
	obs.flags(fs)
	cmd.Usage = usage + flagDefaults(fs)

	cmdline, raw, err := b.parse(fs, args)
	if err != nil {
		return cmd.Exit(err)
	}
	level := new(slog.LevelVar)
	log, _ := newLogger(stderr, b.logFormat, level, b.logLevel, b.verbose)
	b.zp.Name, b.zp.Logger = b.name, log
	b.mdp.Name, b.mdp.Logger = b.name, log
	b.kv.Name, b.kv.Logger = b.name, log
	if sec.tcpAuthenticated, err = curve.apply(log, &b.zp, &b.mdp, &b.kv); err != nil {
		return cmd.Exit(cli.Usagef("%v", err))
	}
	if err := sec.apply(log, &b.zp, &b.mdp, &b.kv); err != nil {
		return cmd.Exit(cli.Usagef("%v", err))
	}
	if err := cl.check(); err != nil {
		return cmd.Exit(cli.Usagef("%v", err))
	}
	// In cluster mode JetStream holds the pipes and the Clone map
	// (started below), not the logs.
	if !cl.enabled() {
		if err := store.apply(log, &b.zp, &b.kv, !b.noZpipes, !b.noClone); err != nil {
			return startFailed(stderr, b.name, err, func() []any { return nil })
		}
	}
	// Log what applies, not what was typed (--pipe-limit 0 is 64MiB).
	b.zp, b.mdp, b.kv = b.zp.WithDefaults(), b.mdp.WithDefaults(), b.kv.WithDefaults()
	memLimit := mem.apply(b.zp.TotalLimit, sec.guard.ReceiveBudget)
	procsMode, stopProcs := ps.apply(log, cl.enabled())
	defer stopProcs()

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
	rl := &reloader{fs: fs, cmdline: cmdline, config: &b.config, raw: raw, log: log, live: map[string]func(string) (string, string, error){}}
	rl.logLevel(level, &b.settings)
	ready := []any{"name", b.name, "version", cli.Version("zbroker"), "log_level", level.Level().String(),
		"memory_limit", units.FormatSize(memLimit), "procs", procsMode}
	observed := &observe.Broker{Name: b.name}
	if cl.enabled() {
		stop, err := cl.start(log, &b.zp, &b.kv, !b.noClone)
		if err != nil {
			fmt.Fprintf(stderr, "zbroker: cluster mode: %v\n", err)
			return cli.ExitFailure
		}
		running = append(running, func() []any { stop(); return nil })
	}
	if !b.noZpipes {
		srv, err := zpipes.Start(b.zp)
		if err != nil {
			return startFailed(stderr, b.name, err, stopAll)
		}
		running = append(running, func() []any {
			st := srv.Close()
			fate := "discarded"
			if store.durable() {
				fate = "kept" // and logged by the store in detail
			}
			// Chunks held by acknowledging readers go with the queued ones.
			return []any{fate + "_chunks", st.Chunks + st.Unacked, fate + "_bytes", st.QueuedBytes,
				"discarded_held_writes", st.Stalled, "pipes", st.Pipes}
		})
		rl.zpipesLimits(srv, &b.zp)
		cl.reloadPipeLimit(rl, &b.zp)
		observed.Zpipes = srv
		ready = append(ready, "zpipes", srv.Endpoint(), "pipe_limit", units.FormatSize(b.zp.PipeLimit),
			"total_limit", units.FormatSize(b.zp.TotalLimit), "max_chunk", units.FormatSize(b.zp.MaxChunkSize),
			"pending_limit", units.FormatSize(b.zp.PendingLimit))
	}
	if !b.noMajordomo {
		srv, err := majordomo.Start(b.mdp)
		if err != nil {
			return startFailed(stderr, b.name, err, stopAll)
		}
		running = append(running, func() []any {
			st := srv.Close()
			return []any{"discarded_requests", st.Queued + st.InFlight}
		})
		rl.majordomoLimits(srv, &b.mdp)
		observed.Majordomo = srv
		ready = append(ready, "majordomo", srv.Endpoint(), "mdp_heartbeat", b.mdp.HeartbeatInterval,
			"mdp_liveness", b.mdp.HeartbeatLiveness, "mdp_request_timeout", b.mdp.RequestTimeout,
			"mdp_queue_limit", b.mdp.RequestQueueLimit)
	}
	if !b.noClone {
		srv, err := clone.Start(b.kv)
		if err != nil {
			return startFailed(stderr, b.name, err, stopAll)
		}
		running = append(running, func() []any {
			st := srv.Close()
			if b.kv.Replica != nil {
				return []any{"clone_keys_kept_in_cluster", st.Keys, "clone_sequence", st.Sequence}
			}
			if store.durable() {
				return []any{"kept_keys", st.Keys, "clone_sequence", st.Sequence}
			}
			return []any{"discarded_keys", st.Keys, "clone_sequence", st.Sequence}
		})
		observed.Clone = srv
		ep := srv.Endpoints()
		ready = append(ready, "clone_snapshot", ep.Snapshot, "clone_updates", ep.Publisher, "clone_collector", ep.Collector,
			"clone_heartbeat", b.kv.HeartbeatInterval, "clone_max_value", units.FormatSize(b.kv.MaxValueSize))
	}
	stopObs, attrs, err := obs.start(observed, sec, b.zp.Guard, log)
	if err != nil {
		return startFailed(stderr, b.name, err, stopAll)
	}
	running = append(running, func() []any { stopObs(); return nil })
	ready = append(ready, attrs...)
	// Bind every endpoint before this line: scripts and systemd take it
	// as the sign that clients can connect.
	log.Info("zbroker ready", ready...)
	if _, err := sdnotify.Notify(sdnotify.Ready); err != nil {
		log.Warn("could not notify the service manager", "err", err)
	}
	for sig := range signals {
		if sig != syscall.SIGHUP {
			break
		}
		rl.reload()
		curve.reload(log)
	}
	sdnotify.Notify(sdnotify.Stopping)
	log.Info("zbroker stopped", stopAll()...)
	return cli.ExitOK
}

func startFailed(stderr io.Writer, name string, err error, stopAll func() []any) int {
	stopAll()
	if errors.Is(err, zmtp.ErrAddrInUse) {
		fmt.Fprintf(stderr, "zbroker: a broker named %q is already running here (%v)\n", name, err)
	} else {
		fmt.Fprintf(stderr, "zbroker: %v\n", err)
	}
	return cli.ExitFailure
}

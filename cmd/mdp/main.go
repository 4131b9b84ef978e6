// Command mdp is a Majordomo client, echo worker and MMI query tool for a
// zbroker's Majordomo service (or any MDP/0.1 or MDP/0.2 broker).
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
	"strings"
	"syscall"
	"time"

	"github.com/zbroker/zbroker/majordomo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: mdp [flags] COMMAND [flags] [ARGS...]

Commands:
  call SERVICE [BODY...]   send a request (one frame per BODY argument, or one
                           empty frame) and print the reply's frames, one per
                           line; with --version 2, PARTIAL replies are printed
                           as they arrive, before the FINAL
  echo-worker SERVICE      serve SERVICE, replying to each request with its
                           body, until interrupted
  mmi service NAME         ask the broker whether NAME has workers: prints 200
                           (exit 0) or 404 (exit 1)
  mmi workers NAME         print how many workers NAME has
  mmi NAME [BODY...]       call the broker's mmi.NAME service
  workers NAME             same as "mmi workers NAME"

Exit status: 0 on a reply, 1 on a failure reply from the broker (printed
as "CODE SERVICE: REASON"), no reply or a 404, 2 on a usage error.

Flags (before or right after COMMAND):
`

type config struct {
	broker   string
	endpoint string
	version  int
	timeout  time.Duration
	retries  int
	hb       time.Duration
	liveness int
	verbose  bool
}

func (c *config) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.broker, "b", "default", "broker `name`: talk to ipc://@/majordomo/NAME")
	fs.StringVar(&c.endpoint, "endpoint", "", "broker `endpoint` (ipc://..., tcp://HOST:PORT), overrides -b")
	fs.IntVar(&c.version, "version", 1, "MDP version: 1 (MDP/0.1, RFC 7) or 2 (MDP/0.2, RFC 18)")
	fs.DurationVar(&c.timeout, "timeout", 2500*time.Millisecond, "how long to wait for a reply before resending")
	fs.IntVar(&c.retries, "retries", 3, "how many times to resend a request that got no reply")
	fs.DurationVar(&c.hb, "heartbeat", 2500*time.Millisecond, "echo-worker: heartbeat interval (must match the broker's)")
	fs.IntVar(&c.liveness, "liveness", 3, "echo-worker: heartbeats missed before the broker counts as lost")
	fs.BoolVar(&c.verbose, "v", false, "verbose: log connections and retries")
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg config
	fs := flag.NewFlagSet("mdp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.flags(fs)
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
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	command := fs.Arg(0)
	// Flags may also follow the command.
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return 2
	}
	rest := fs.Args()
	if cfg.version != 1 && cfg.version != 2 {
		fmt.Fprintf(stderr, "mdp: --version must be 1 or 2, not %d\n", cfg.version)
		return 2
	}
	endpoint := cfg.endpoint
	if endpoint == "" {
		endpoint = majordomo.Endpoint(cfg.broker)
	}
	level := slog.LevelWarn
	if cfg.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	need := func(n int, what string) bool {
		if len(rest) < n {
			fmt.Fprintf(stderr, "mdp: %s: missing %s\n", command, what)
			return false
		}
		return true
	}
	switch command {
	case "call":
		if !need(1, "SERVICE") {
			return 2
		}
		code, _ := call(ctx, &cfg, endpoint, log, rest[0], rest[1:], stdout, stderr)
		return code
	case "echo-worker":
		if !need(1, "SERVICE") || len(rest) > 1 {
			fmt.Fprintln(stderr, "mdp: usage: echo-worker SERVICE")
			return 2
		}
		return echoWorker(ctx, &cfg, endpoint, log, rest[0], stderr)
	case "workers":
		if !need(1, "NAME") {
			return 2
		}
		code, _ := call(ctx, &cfg, endpoint, log, majordomo.MMIWorkers, rest[:1], stdout, stderr)
		return code
	case "mmi":
		if !need(1, "the MMI service (service, workers, ...)") {
			return 2
		}
		svc := majordomo.MMIPrefix + strings.TrimPrefix(rest[0], majordomo.MMIPrefix)
		if svc == majordomo.MMIService || svc == majordomo.MMIWorkers {
			if !need(2, "NAME") {
				return 2
			}
		}
		code, first := call(ctx, &cfg, endpoint, log, svc, rest[1:], stdout, stderr)
		if code == 0 && svc == majordomo.MMIService && first != "200" {
			code = 1
		}
		return code
	}
	fmt.Fprintf(stderr, "mdp: unknown command %q\n", command)
	fs.Usage()
	return 2
}

// call makes one request and prints the reply; it returns the exit status
// and the reply's first frame.
func call(ctx context.Context, cfg *config, endpoint string, log *slog.Logger, service string, body []string, stdout, stderr io.Writer) (int, string) {
	retries := cfg.retries
	if retries <= 0 {
		retries = -1 // ClientOptions: 0 means the default, -1 none
	}
	c, err := majordomo.NewClient(endpoint, majordomo.ClientOptions{
		Version: majordomo.Version(cfg.version), Timeout: cfg.timeout, Retries: retries, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "mdp: %v\n", err)
		return 2, ""
	}
	defer c.Close()
	frames := make([][]byte, len(body))
	for i, b := range body {
		frames[i] = []byte(b)
	}
	printFrames := func(f [][]byte) {
		for _, fr := range f {
			stdout.Write(fr)
			io.WriteString(stdout, "\n")
		}
	}
	reply, err := c.Stream(ctx, service, frames, printFrames)
	var se *majordomo.ServiceError
	switch {
	case errors.As(err, &se):
		fmt.Fprintf(stderr, "mdp: %s %s: %s\n", se.Code, se.Service, se.Reason)
		return 1, ""
	case err != nil:
		fmt.Fprintf(stderr, "mdp: %v (is a broker running on %s?)\n", err, endpoint)
		return 1, ""
	}
	printFrames(reply)
	if len(reply) == 0 {
		return 0, ""
	}
	return 0, string(reply[0])
}

func echoWorker(ctx context.Context, cfg *config, endpoint string, log *slog.Logger, service string, stderr io.Writer) int {
	w, err := majordomo.NewWorker(endpoint, service, func(ctx context.Context, req *majordomo.Request) [][]byte {
		return req.Body
	}, majordomo.WorkerOptions{
		Version:           majordomo.Version(cfg.version),
		HeartbeatInterval: cfg.hb,
		HeartbeatLiveness: cfg.liveness,
		Logger:            log,
	})
	if err != nil {
		fmt.Fprintf(stderr, "mdp: %v\n", err)
		return 2
	}
	if cfg.verbose {
		log.Info("echo worker running", "service", service, "endpoint", endpoint, "version", cfg.version)
	}
	w.Run(ctx)
	return 0
}

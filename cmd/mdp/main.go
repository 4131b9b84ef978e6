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

	"github.com/zbroker/zbroker/internal/cli"
	"github.com/zbroker/zbroker/majordomo"
	"github.com/zbroker/zbroker/zmtp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: mdp [flags] COMMAND [ARGS...]
       mdp help | --help | --version

mdp is a Majordomo client, echo worker and MMI query tool for a zbroker's
Majordomo service (or any MDP/0.1 or MDP/0.2 broker).

Commands:
  call SERVICE [BODY...]   send a request (one frame per BODY argument, or one
                           empty frame) and print the reply's frames, one per
                           line; with --protocol 2, PARTIAL replies are printed
                           as they arrive, before the FINAL
  echo-worker SERVICE      serve SERVICE, replying to each request with its
                           body, until interrupted
  mmi service NAME         ask the broker whether NAME has workers: prints 200
                           (exit 0) or 404 (exit 1)
  mmi workers NAME         print how many workers NAME has
  mmi NAME [BODY...]       call the broker's mmi.NAME service
  workers NAME             same as "mmi workers NAME"

Flags (anywhere; "--" ends them, for a BODY that starts with "-"):
  -b, --broker NAME   the broker's name (default "default"): talk to
                      ipc://@/majordomo/NAME
  --endpoint EP       the broker's endpoint (ipc://..., tcp://HOST:PORT),
                      instead of -b
  --protocol N        MDP version: 1 (MDP/0.1, RFC 7; default) or 2
                      (MDP/0.2, RFC 18)
  --timeout D         how long to wait for a reply before resending
                      (default 2.5s)
  --retries N         how many times to resend a request that got no reply
                      (default 3)
  --heartbeat D       echo-worker: heartbeat interval, must match the
                      broker's (default 2.5s)
  --liveness N        echo-worker: heartbeats missed before the broker
                      counts as lost (default 3)
  -v                  verbose: log connections and retries
` + cli.BrokerUIDHelp + cli.CurveHelp + `
Exit status: 0 on a reply; 1 on a failure reply from the broker (printed
as "CODE SERVICE: REASON"), no reply, a 404 or no broker; 2 on a usage
error.
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
	uid      int
	curve    cli.Curve
	// curveOpts are the CURVE options curve asks for, once parsed.
	curveOpts *zmtp.CurveOptions
}

func (c *config) flags(fs *flag.FlagSet) {
	cli.BrokerFlag(fs, &c.broker)
	fs.StringVar(&c.endpoint, "endpoint", "", "")
	fs.IntVar(&c.version, "protocol", 1, "")
	fs.DurationVar(&c.timeout, "timeout", 2500*time.Millisecond, "")
	fs.IntVar(&c.retries, "retries", 3, "")
	fs.DurationVar(&c.hb, "heartbeat", 2500*time.Millisecond, "")
	fs.IntVar(&c.liveness, "liveness", 3, "")
	fs.BoolVar(&c.verbose, "v", false, "")
	cli.BrokerUIDFlag(fs, &c.uid)
	cli.CurveFlags(fs, &c.curve)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := &cli.Command{Name: "mdp", Usage: usage, Stdout: stdout, Stderr: stderr}
	var cfg config
	fs := cmd.FlagSet()
	cfg.flags(fs)
	words, err := cli.Parse(fs, args)
	if err != nil {
		return cmd.Exit(err)
	}
	if len(words) == 0 {
		return cmd.Exit(cli.Usagef("missing command (call, echo-worker, mmi or workers)"))
	}
	command, rest := words[0], words[1:]
	if command == "help" {
		return cmd.Exit(flag.ErrHelp)
	}
	if cfg.curveOpts, err = cfg.curve.Options(); err != nil {
		return cmd.Exit(err)
	}
	if cfg.version != 1 && cfg.version != 2 {
		return cmd.Exit(cli.Usagef("--protocol must be 1 or 2, not %d", cfg.version))
	}
	endpoint := cfg.endpoint
	who := "broker at " + endpoint
	if endpoint == "" {
		endpoint = majordomo.Endpoint(cfg.broker)
		who = fmt.Sprintf("broker %q at %s", cfg.broker, endpoint)
	}
	level := slog.LevelWarn
	if cfg.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	need := func(n int, what string) error {
		if len(rest) < n {
			return cli.Usagef("%s: missing %s", command, what)
		}
		return nil
	}
	var service string
	var body []string
	switch command {
	case "call":
		err = need(1, "SERVICE")
		if err == nil {
			service, body = rest[0], rest[1:]
		}
	case "echo-worker":
		err = need(1, "SERVICE")
		if err == nil && len(rest) > 1 {
			err = cli.Usagef("echo-worker takes one SERVICE, got %q", rest)
		}
		if err == nil {
			service = rest[0]
		}
	case "workers":
		err = need(1, "NAME")
		if err == nil {
			service, body = majordomo.MMIWorkers, rest[:1]
		}
	case "mmi":
		err = need(1, "the MMI service (service, workers, ...)")
		if err == nil {
			service, body = majordomo.MMIPrefix+strings.TrimPrefix(rest[0], majordomo.MMIPrefix), rest[1:]
			if service == majordomo.MMIService || service == majordomo.MMIWorkers {
				err = need(2, "NAME")
			}
		}
	default:
		err = cli.Usagef("unknown command %q (want call, echo-worker, mmi or workers)", command)
	}
	if err != nil {
		return cmd.Exit(err)
	}
	// Tell a broker that is not running from a service without a worker:
	// both would otherwise look like a request without a reply.
	if err := cli.Probe(ctx, endpoint, cfg.uid, cfg.curveOpts); errors.Is(err, cli.ErrNotRunning) {
		return cmd.Exit(fmt.Errorf("no %s (is zbroker running?)", who))
	} else if err != nil {
		return cmd.Exit(err)
	}
	if command == "echo-worker" {
		return echoWorker(ctx, &cfg, endpoint, log, service, stderr)
	}
	code, first := call(ctx, &cfg, endpoint, log, service, body, stdout, stderr)
	if code == 0 && service == majordomo.MMIService && first != "200" {
		code = cli.ExitFailure
	}
	return code
}

// call makes one request and prints the reply; it returns the exit status
// and the reply's first frame.
func call(ctx context.Context, cfg *config, endpoint string, log *slog.Logger, service string, body []string, stdout, stderr io.Writer) (int, string) {
	retries := cfg.retries
	if retries <= 0 {
		retries = -1 // ClientOptions: 0 means the default, -1 none
	}
	c, err := majordomo.NewClient(endpoint, majordomo.ClientOptions{
		Version: majordomo.Version(cfg.version), Timeout: cfg.timeout, Retries: retries, Logger: log, BrokerUID: cfg.uid, Curve: cfg.curveOpts})
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
	case errors.Is(err, majordomo.ErrTimeout):
		// The broker was there a moment ago (Probe): the service is
		// slow or has no worker, which "mdp workers" tells.
		fmt.Fprintf(stderr, "mdp: %s: no reply within --timeout %v after %d attempt(s) (is a worker serving it? see 'mdp workers %s')\n",
			service, cfg.timeout, max(cfg.retries, 0)+1, service)
		return 1, ""
	case err != nil:
		fmt.Fprintf(stderr, "mdp: %v\n", err)
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
		Curve:             cfg.curveOpts,
		Version:           majordomo.Version(cfg.version),
		HeartbeatInterval: cfg.hb,
		HeartbeatLiveness: cfg.liveness,
		Logger:            log,
		BrokerUID:         cfg.uid,
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

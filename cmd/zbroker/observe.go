package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/zbroker/zbroker/internal/cli"
	"github.com/zbroker/zbroker/internal/observe"
	"github.com/zbroker/zbroker/zmtp"
)

// observeSettings are the flags of the endpoints that show what the broker
// holds: the control endpoint `zbroker status` asks, and --http.
type observeSettings struct {
	http    string
	pprof   bool
	limit   int
	control string
}

func (o *observeSettings) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.http, "http", "", "serve /metrics (Prometheus), /stats (JSON) and /healthz on `host:port`, e.g. 127.0.0.1:9090 (off by default; loopback only unless --insecure-tcp)")
	fs.BoolVar(&o.pprof, "pprof", false, "also serve Go's profiler under /debug/pprof/ on --http")
	fs.IntVar(&o.limit, "stats-limit", observe.DefaultLimit, "pipes and Majordomo services with series of their own in /metrics (the deepest and busiest; totals cover all), and listed by /stats")
	fs.StringVar(&o.control, "control-endpoint", "", "answer `zbroker status` on this `endpoint` instead of ipc://@/zbroker/NAME/control (or ipc://DIR/control with --ipc-dir)")
}

// controlEndpoint is where `zbroker status` finds the broker called name
// that serves its ipc endpoints in ipcDir, if not "".
func controlEndpoint(name, ipcDir string) string {
	if ipcDir != "" {
		return "ipc://" + filepath.Join(ipcDir, "control")
	}
	return observe.ControlEndpoint(name)
}

// start binds the control endpoint, admitting peers as the services'
// shared guard does, and, with --http, the HTTP endpoint. It returns what
// to log and a function that stops them.
func (o *observeSettings) start(b *observe.Broker, sec *securityFlags, guard *zmtp.Guard, log *slog.Logger) (stop func(), attrs []any, err error) {
	endpoint := o.control
	if endpoint == "" {
		endpoint = controlEndpoint(b.Name, sec.ipcDir)
	}
	if exposedTCP(endpoint) && !sec.insecureTCP {
		return nil, nil, fmt.Errorf("--control-endpoint %s would show the broker's state to anyone who can reach it: bind a loopback address, or pass --insecure-tcp", endpoint)
	}
	ctl, err := observe.ListenControl(endpoint, b, zmtp.Options{Guard: guard, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	attrs = []any{"control", ctl.Endpoint()}
	if o.http == "" {
		if o.pprof {
			log.Warn("--pprof has no effect without --http")
		}
		return ctl.Close, attrs, nil
	}
	h, err := observe.ListenHTTP(o.http, b, observe.HTTPOptions{Limit: o.limit, Pprof: o.pprof, AnyAddress: sec.insecureTCP, Logger: log})
	if err != nil {
		ctl.Close()
		return nil, nil, err
	}
	attrs = append(attrs, "http", h.Addr(), "pprof", o.pprof)
	return func() { h.Close(); ctl.Close() }, attrs, nil
}

const statusUsage = `usage: zbroker status [flags] [NAME]

Prints what the running broker NAME (default "default") holds: each
service's state, the deepest pipes, the busiest Majordomo services, Clone's
keys and sequence, and the connections with the uid and pid (ipc) or
address (tcp) of each peer. It asks the broker over its control endpoint,
ipc://@/zbroker/NAME/control, so no --http is needed. Exits 0 when every
service is serving, 1 when one is not or the broker is not running.

Flags:
`

// runStatus is `zbroker status`.
func runStatus(args []string, stdout, stderr io.Writer) int {
	cmd := &cli.Command{Name: "zbroker status", Stdout: stdout, Stderr: stderr}
	fs := cmd.FlagSet()
	var name, endpoint, ipcDir string
	var brokerUID int
	cli.BrokerFlag(fs, &name)
	cli.BrokerUIDFlag(fs, &brokerUID)
	fs.StringVar(&ipcDir, "ipc-dir", "", "the broker serves its endpoints in `dir` (zbroker --ipc-dir)")
	asJSON := fs.Bool("json", false, "print the report as JSON, as /stats serves it")
	limit := fs.Int("limit", observe.DefaultLimit, "list at most `n` pipes, Majordomo services and connections per service")
	fs.StringVar(&endpoint, "control-endpoint", "", "ask this `endpoint` instead of ipc://@/zbroker/NAME/control")
	cmd.Usage = statusUsage + flagDefaults(fs)
	words, err := cli.Parse(fs, args)
	switch {
	case err != nil:
		return cmd.Exit(err)
	case len(words) > 1:
		return cmd.Exit(cli.Usagef("one broker name at most, got %q", words))
	case *limit < 0:
		return cmd.Exit(cli.Usagef("--limit %d: want 0 or more", *limit))
	case len(words) == 1:
		name = words[0]
	}
	if endpoint == "" {
		endpoint = controlEndpoint(name, ipcDir)
	}
	if err := cli.Probe(context.Background(), endpoint, brokerUID, nil); err != nil {
		if errors.Is(err, cli.ErrNotRunning) {
			err = fmt.Errorf("no broker named %q is running (nothing at %s)", name, endpoint)
		}
		return cmd.Exit(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := observe.QueryControl(ctx, endpoint, *limit, brokerUID)
	if err != nil {
		return cmd.Exit(err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(r)
	} else {
		err = observe.WriteTable(stdout, r)
	}
	if err != nil {
		return cmd.Exit(err)
	}
	if !r.Healthy {
		return cli.ExitFailure
	}
	return cli.ExitOK
}

// flagDefaults is the flags' part of a usage text.
func flagDefaults(fs *flag.FlagSet) string {
	var b strings.Builder
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	return b.String()
}

// Command zclone reads and writes the shared key-value map of a Clone
// server (zbroker's clone service, ZeroMQ RFC 12/CHP) from the shell. Run
// "zclone --help" for the usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/zbroker/zbroker/clone"
	"github.com/zbroker/zbroker/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: zclone [-b NAME | --endpoint-prefix PREFIX] get KEY
       zclone [...] set [--ttl SECONDS] KEY VALUE
       zclone [...] del KEY
       zclone [...] watch PREFIX
       zclone [...] dump PREFIX
       zclone help | --help | --version

zclone uses the shared key-value map of a Clone server (zbroker's clone
service, ZeroMQ RFC 12/CHP). Every command takes a snapshot of the keys it
needs; set and del wait until the server has published the change.

Commands:
  get KEY          print KEY's value (exit 1 if it is not set)
  set KEY VALUE    set KEY; with --ttl the value expires after SECONDS
  del KEY          delete KEY
  watch PREFIX     print every change under PREFIX as "SEQ KEY VALUE"
                   ("SEQ KEY" alone for a delete) until interrupted
  dump PREFIX      print "KEY=VALUE" for every key under PREFIX, sorted

Flags (before or after the command; "--" ends them):
  -b, --broker NAME         the broker's name (default "default"); zbroker
                            NAME serves ipc://@/clone/NAME/{snapshot,updates,
                            collector}
  --endpoint-prefix PREFIX  tcp://HOST:P uses ports P, P+1, P+2 (snapshot,
                            updates, collector: the CHP convention); any
                            other PREFIX gets /snapshot, /updates, /collector
                            appended
  --ttl SECONDS             set: time to live (decimals allowed)
  --timeout DURATION        give up connecting after this (default 5s)
  --broker-uid UID          trust a broker running as UID (default: only
                            one running as yourself or root, see
                            docs/security.md)

CURVE (tcp endpoints of a broker run with --curve-secret-key-file):
` + cli.CurveHelp + `
Exit status: 0 success; 1 error (no broker, key not set, no answer); 2
usage error.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := &cli.Command{Name: "zclone", Usage: usage, Stdout: stdout, Stderr: stderr}
	fs := cmd.FlagSet()
	var broker, prefix string
	var ttl float64
	timeout := 5 * time.Second
	cli.BrokerFlag(fs, &broker)
	fs.StringVar(&prefix, "endpoint-prefix", "", "")
	fs.Float64Var(&ttl, "ttl", 0, "")
	fs.DurationVar(&timeout, "timeout", timeout, "")
	var uid int
	cli.BrokerUIDFlag(fs, &uid)
	var curve cli.Curve
	cli.CurveFlags(fs, &curve)
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return cmd.Exit(err)
	}
	curveOpts, err := curve.Options()
	if err != nil {
		return cmd.Exit(err)
	}
	want := map[string]int{"get": 2, "set": 3, "del": 2, "watch": 2, "dump": 2}
	switch {
	case len(pos) == 0:
		return cmd.Exit(cli.Usagef("missing command (get, set, del, watch or dump)"))
	case pos[0] == "help":
		return cmd.Exit(flag.ErrHelp)
	case want[pos[0]] == 0:
		return cmd.Exit(cli.Usagef("unknown command %q (want get, set, del, watch or dump)", pos[0]))
	case want[pos[0]] != len(pos):
		return cmd.Exit(cli.Usagef("%s takes %d argument(s), got %d", pos[0], want[pos[0]]-1, len(pos)-1))
	case pos[0] == "set" && pos[2] == "":
		return cmd.Exit(cli.Usagef("an empty value deletes: use del"))
	}
	opts := clone.ClientOptions{Name: broker, Subtree: pos[1], BrokerUID: uid, Curve: curveOpts, Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	who := fmt.Sprintf("broker %q at %s", broker, clone.SnapshotEndpoint(broker))
	if prefix != "" {
		if opts.SnapshotEndpoint, opts.PublisherEndpoint, opts.CollectorEndpoint, err = endpoints(prefix); err != nil {
			return cmd.Exit(cli.Usagef("--endpoint-prefix: %v", err))
		}
		who = "broker at " + opts.SnapshotEndpoint
	} else {
		opts.SnapshotEndpoint = clone.SnapshotEndpoint(broker)
	}
	if err := cli.Probe(ctx, opts.SnapshotEndpoint, uid, curveOpts); errors.Is(err, cli.ErrNotRunning) {
		return cmd.Exit(fmt.Errorf("no %s (is zbroker running?)", who))
	} else if err != nil {
		return cmd.Exit(err)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := clone.Connect(cctx, opts)
	if err != nil {
		return cmd.Exit(err)
	}
	defer c.Close()
	key := pos[1]
	switch pos[0] {
	case "get":
		v, ok := c.Get(key)
		if !ok {
			fmt.Fprintf(stderr, "zclone: %s is not set\n", key)
			return 1
		}
		fmt.Fprintf(stdout, "%s\n", v)
	case "set", "del":
		var v []byte
		if pos[0] == "set" {
			v = []byte(pos[2])
		}
		if err := c.SetWait(cctx, key, v, time.Duration(ttl*float64(time.Second))); err != nil {
			fmt.Fprintf(stderr, "zclone: %s: %v\n", pos[0], err)
			return 1
		}
	case "dump":
		m := c.Dump(key)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(stdout, "%s=%s\n", k, m[k])
		}
	case "watch":
		ch, stop := c.Watch()
		defer stop()
		for {
			select {
			case u, ok := <-ch:
				if !ok {
					return 0
				}
				if u.Value == nil {
					fmt.Fprintf(stdout, "%d %s\n", u.Seq, u.Key)
				} else {
					fmt.Fprintf(stdout, "%d %s %s\n", u.Seq, u.Key, u.Value)
				}
			case <-ctx.Done():
				return 0
			}
		}
	}
	return 0
}

// endpoints derives the three endpoints from --endpoint-prefix.
func endpoints(prefix string) (snap, pub, coll string, err error) {
	if hp, ok := strings.CutPrefix(prefix, "tcp://"); ok {
		host, port, err := net.SplitHostPort(hp)
		if err != nil {
			return "", "", "", err
		}
		p, err := strconv.Atoi(port)
		if err != nil || p <= 0 || p > 65533 {
			return "", "", "", fmt.Errorf("bad port in %q", prefix)
		}
		ep := func(n int) string { return "tcp://" + net.JoinHostPort(host, strconv.Itoa(n)) }
		return ep(p), ep(p + 1), ep(p + 2), nil
	}
	prefix = strings.TrimSuffix(prefix, "/")
	return prefix + "/snapshot", prefix + "/updates", prefix + "/collector", nil
}

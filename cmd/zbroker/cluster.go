package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/zbroker/zbroker/clone"
	"github.com/zbroker/zbroker/internal/cluster"
	"github.com/zbroker/zbroker/internal/natsnode"
	"github.com/zbroker/zbroker/internal/wal"
	"github.com/zbroker/zbroker/zpipes"
)

// clusterFlags are the flags of cluster mode (docs/cluster.md): an
// embedded JetStream node, or an existing NATS cluster, holding the state
// that zbrokers on several hosts share.
type clusterFlags struct {
	cfg    natsnode.Config
	store  *storageFlags // --data-dir and --fsync: the embedded node's store
	routes string
	urls   string
	pipes  *cluster.PipeStore // once started
}

func registerClusterFlags(fs *flag.FlagSet, store *storageFlags) *clusterFlags {
	f := &clusterFlags{store: store}
	fs.StringVar(&f.cfg.Listen, "nats-listen", "", "cluster mode: the embedded JetStream node's NATS client address `host:port`")
	fs.StringVar(&f.cfg.ClusterListen, "cluster-listen", "", "cluster mode: the embedded node's route address `host:port`")
	fs.StringVar(&f.routes, "cluster", "", "cluster mode: every node's `nats-route://host:port`, comma-separated, this one included")
	fs.StringVar(&f.urls, "nats", "", "cluster mode on an existing NATS cluster with JetStream: `nats://host:port`[,...]")
	fs.IntVar(&f.cfg.Replicas, "replicas", 0, "cluster mode: copies of each pipe and of the Clone map (default 3 with 3 or more nodes, else 1)")
	fs.DurationVar(&f.cfg.Wait, "cluster-wait", time.Minute, "cluster mode: how long to wait at start for JetStream (a majority of the nodes) to answer")
	return f
}

// enabled reports whether cluster mode was asked for.
func (f *clusterFlags) enabled() bool {
	return f.cfg.Listen != "" || f.cfg.ClusterListen != "" || f.routes != "" || f.urls != ""
}

// check validates the flags before anything starts.
func (f *clusterFlags) check() error {
	if !f.enabled() {
		return nil
	}
	f.cfg.Routes = splitList(f.routes)
	f.cfg.URLs = splitList(f.urls)
	f.cfg.DataDir = f.store.dataDir
	if len(f.cfg.URLs) > 0 && f.cfg.DataDir != "" {
		return errors.New("--nats uses an existing cluster's storage; --data-dir does not apply")
	}
	// --fsync keeps its meaning for the node's store: always syncs
	// every message before the ack; interval and never leave it to a
	// timer (never: JetStream's own default, 2 minutes).
	switch f.store.fsync {
	case wal.SyncAlways:
		f.cfg.SyncAlways = true
	case wal.SyncInterval:
		f.cfg.SyncInterval = f.store.interval
	}
	return f.cfg.Validate()
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// start brings up the node, the Clone bucket and the pipes' store, and
// points the services at them. The returned function stops them (after
// the services). INT or TERM ends the wait for the cluster (run's own
// signal loop then sees them too).
func (f *clusterFlags) start(log *slog.Logger, zp *zpipes.Options, kv *clone.Options, serveClone bool) (func(), error) {
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	f.cfg.Logger = log
	node, err := natsnode.Start(ctx, f.cfg)
	if err != nil {
		return nil, err
	}
	stop := node.Close
	// A chunk travels as one NATS message (with a few headers).
	if maxChunk := node.Conn.MaxPayload() - cluster.ChunkRoom; zp.MaxChunkSize > maxChunk {
		log.Info("cluster mode: chunks limited by the NATS max payload", "max_chunk", maxChunk)
		zp.MaxChunkSize = maxChunk
	}
	o := zp.WithDefaults()
	f.pipes = cluster.NewPipeStore(node.JS, cluster.PipeConfig{Replicas: node.Replicas, PipeLimit: o.PipeLimit, MaxChunk: o.MaxChunkSize, MaxUnacked: o.MaxUnacked, Logger: log})
	zp.Store = f.pipes
	if serveClone {
		bctx, cancel := context.WithTimeout(ctx, f.cfg.Wait)
		defer cancel()
		ckv, err := cluster.OpenCloneKV(bctx, node.JS, node.Replicas, log)
		if err != nil {
			node.Close()
			return nil, err
		}
		kv.Replica = ckv
		stop = func() { ckv.Close(); node.Close() }
	}
	log.Info("cluster mode", "replicas", node.Replicas, "node", node.Name, "clone_bucket", cluster.CloneBucket,
		"majordomo", "per host")
	return stop, nil
}

// reloadPipeLimit makes a reloaded --pipe-limit the pipes' streams'
// MaxBytes too (a stream's limit is the cluster's: give every host the
// same).
func (f *clusterFlags) reloadPipeLimit(rl *reloader, o *zpipes.Options) {
	apply := rl.live["pipe-limit"]
	if f.pipes == nil || apply == nil {
		return
	}
	rl.live["pipe-limit"] = func(text string) (string, string, error) {
		old, nw, err := apply(text)
		if err == nil {
			f.pipes.SetPipeLimit(o.PipeLimit)
		}
		return old, nw, err
	}
}

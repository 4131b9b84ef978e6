package main

// Cluster mode (docs/cluster.md): zpipes through zbroker on embedded
// JetStream nodes, against a bare nats.go publisher and consumer on the
// same stream and consumer configuration, in the same run.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/zbroker/zbroker/internal/cluster"
	"github.com/zbroker/zbroker/internal/natsnode"
	"github.com/zbroker/zbroker/zpipes"
)

// clusterPipeLimit is the streams' MaxBytes in the cluster cases.
const clusterPipeLimit = 64 << 20

// maxUnacked is zbroker's default --max-unacked: part of the consumer
// configuration zpipes and the bare pair share.
var maxUnacked = zpipes.Options{}.WithDefaults().MaxUnacked

// startNodes starts n embedded nodes on loopback, with their stores in a
// temporary directory that stop removes.
func startNodes(n int) ([]*natsnode.Node, func(), error) {
	dir, err := os.MkdirTemp("", "zpipes-bench-cluster-")
	if err != nil {
		return nil, nil, err
	}
	ports := make([]int, 2*n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[n+i]))
	}
	nodes, errs := make([]*natsnode.Node, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		cfg := natsnode.Config{DataDir: fmt.Sprintf("%s/node%d", dir, i), Listen: fmt.Sprintf("127.0.0.1:%d", ports[i]),
			Wait: time.Minute, Logger: slog.New(slog.DiscardHandler)}
		if n > 1 {
			cfg.ClusterListen, cfg.Routes = fmt.Sprintf("127.0.0.1:%d", ports[n+i]), routes
		}
		wg.Go(func() { nodes[i], errs[i] = natsnode.Start(context.Background(), cfg) })
	}
	wg.Wait()
	stop := func() {
		for _, nd := range nodes {
			if nd != nil {
				nd.Close()
			}
		}
		os.RemoveAll(dir)
	}
	if err := errors.Join(errs...); err != nil {
		stop()
		return nil, nil, err
	}
	return nodes, stop, nil
}

// runCluster prints chunks/s for each node count and size: zpipes (writer
// on the first node, reader on the last), the bare pair publishing one
// message at a time and publishing with --window messages in flight
// (PublishMsgAsync). With --profile, a CPU profile of the whole run.
func runCluster(cfg *config, counts []int, stdout, stderr io.Writer) int {
	if cfg.ProfileDir != "" {
		// Everything runs in this process: one profile of it all.
		stop, err := startCPUProfile(filepath.Join(cfg.ProfileDir, "cluster.pprof"))
		if err != nil {
			fmt.Fprintf(stderr, "zpipes-bench: %v\n", err)
			return 1
		}
		defer stop()
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "nodes\tsize\tzpipes/s\tbare sync/s\tbare async/s\tzpipes÷sync\tzpipes÷async\t")
	for _, n := range counts {
		nodes, stop, err := startNodes(n)
		if err != nil {
			fmt.Fprintf(stderr, "zpipes-bench: %d nodes: %v\n", n, err)
			return 1
		}
		for i, size := range cfg.Sizes {
			chunk := make([]byte, size)
			pipe := fmt.Sprintf("bench-%d", i)
			z, err := zpipesRate(cfg, nodes, pipe, chunk)
			var bs, ba float64
			if err == nil {
				bs, err = bareRate(cfg, nodes, pipe+"-sync", chunk, 1)
			}
			if err == nil {
				ba, err = bareRate(cfg, nodes, pipe+"-async", chunk, cfg.Window)
			}
			if err != nil {
				stop()
				fmt.Fprintf(stderr, "zpipes-bench: %d nodes, %s: %v\n", n, sizeLabel(size), err)
				return 1
			}
			fmt.Fprintf(tw, "%d (R%d)\t%s\t%.0f\t%.0f\t%.0f\t%.0f%%\t%.0f%%\t\n",
				n, nodes[0].Replicas, sizeLabel(size), z, bs, ba, 100*z/bs, 100*z/ba)
		}
		stop()
	}
	tw.Flush()
	return 0
}

// measure runs load until warmup plus duration and returns the count per
// second over the duration. The warmup starts with the first message: the
// first JetStream requests after a start may go unanswered and be retried
// a second later, which is start-up, not throughput.
func measure(cfg *config, count *atomic.Int64) float64 {
	for give := time.Now().Add(time.Minute); count.Load() == 0 && time.Now().Before(give); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(cfg.Warmup)
	start, n0 := time.Now(), count.Load()
	time.Sleep(cfg.Duration)
	return float64(count.Load()-n0) / time.Since(start).Seconds()
}

func zpipesRate(cfg *config, nodes []*natsnode.Node, pipe string, chunk []byte) (float64, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)
	var srvs []*zpipes.Server
	defer func() {
		for _, s := range srvs {
			s.Close()
		}
	}()
	var cls []*zpipes.Client
	for i, nd := range []*natsnode.Node{nodes[0], nodes[len(nodes)-1]} {
		srv, err := zpipes.Start(zpipes.Options{
			Name:      fmt.Sprintf("bench-cluster-%d-%d-%s", os.Getpid(), i, pipe),
			PipeLimit: clusterPipeLimit,
			Store: cluster.NewPipeStore(nd.JS, cluster.PipeConfig{
				Replicas: nd.Replicas, PipeLimit: clusterPipeLimit, MaxUnacked: maxUnacked, Logger: quiet}),
			Logger: quiet,
		})
		if err != nil {
			return 0, err
		}
		srvs = append(srvs, srv)
		c, err := zpipes.DialEndpoint(ctx, srv.Endpoint())
		if err != nil {
			return 0, err
		}
		defer c.Disconnect()
		if err := c.Open(ctx, pipe); err != nil {
			return 0, err
		}
		cls = append(cls, c)
	}
	w, r := cls[0], cls[1]
	var read atomic.Int64
	done := make(chan struct{})
	go func() {
		pl := zpipes.NewPipeline(cfg.Window)
		for ctx.Err() == nil {
			if pl.Add(ctx, w.WriteAsync(pipe, chunk)) != nil {
				return
			}
		}
	}()
	go func() {
		defer close(done)
		var pending []*zpipes.Pending
		for ctx.Err() == nil {
			for len(pending) < cfg.Window {
				pending = append(pending, r.ReadAsync(pipe))
			}
			if _, err := pending[0].Wait(ctx); err != nil {
				return
			}
			pending = pending[1:]
			read.Add(1)
		}
	}()
	rate := measure(cfg, &read)
	cancel()
	<-done
	return rate, nil
}

// bareRate publishes from the first node and consumes on the last, with
// window publishes in flight.
func bareRate(cfg *config, nodes []*natsnode.Node, pipe string, chunk []byte, window int) (float64, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub, sub := nodes[0].JS, nodes[len(nodes)-1].JS
	sc := cluster.PipeStreamConfig([]byte(pipe), clusterPipeLimit, nodes[0].Replicas)
	err := natsnode.Retry(ctx, "bench stream", slog.New(slog.DiscardHandler), func(ctx context.Context) error {
		_, err := pub.CreateStream(ctx, sc)
		return err
	})
	if err != nil {
		return 0, err
	}
	defer pub.DeleteStream(context.Background(), sc.Name)
	cons, err := sub.CreateOrUpdateConsumer(ctx, sc.Name, cluster.PipeConsumerConfig(maxUnacked))
	if err != nil {
		return 0, err
	}
	var read atomic.Int64
	cc, err := cons.Consume(func(m jetstream.Msg) { m.Ack(); read.Add(1) })
	if err != nil {
		return 0, err
	}
	defer cc.Stop()
	subject := sc.Subjects[0]
	go func() {
		futures := make(chan jetstream.PubAckFuture, window)
		go func() {
			for f := range futures {
				select {
				case <-f.Ok():
				case <-f.Err():
				case <-ctx.Done():
				}
			}
		}()
		defer close(futures)
		for ctx.Err() == nil {
			if window == 1 {
				pub.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: chunk})
				continue
			}
			f, err := pub.PublishMsgAsync(&nats.Msg{Subject: subject, Data: chunk})
			if err != nil {
				time.Sleep(time.Millisecond)
				continue
			}
			futures <- f
		}
	}()
	return measure(cfg, &read), nil
}

// Package natsnode gives zbroker a NATS JetStream connection: either an
// embedded JetStream server (one node of a cluster whose other nodes are
// other zbrokers) or a connection to an existing NATS cluster. Both end in
// the same *Node, so the services' JetStream backends have one code path.
package natsnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ClusterName is the NATS cluster name every embedded node uses; nodes
// with different names refuse each other's routes.
const ClusterName = "zbroker"

// Config says which JetStream to use. With URLs set the node connects to
// an existing NATS cluster; otherwise it embeds a server.
type Config struct {
	// DataDir holds the embedded server's JetStream store and its node
	// name (DataDir/node-name), kept so a restarted node is the same
	// Raft peer.
	DataDir string
	// Listen is the embedded server's client address, HOST:PORT. It must
	// listen: JetStream's cluster traffic (and the routes' INFO that
	// forms the cluster) needs each server's client port.
	Listen string
	// ClusterListen is the route address, HOST:PORT; Routes lists every
	// node's nats-route://HOST:PORT, this one's included. Both empty: a
	// single node.
	ClusterListen string
	Routes        []string
	// URLs of an existing NATS cluster with JetStream (nats://HOST:PORT).
	URLs []string
	// Replicas of each stream and bucket; 0: 3 when the cluster has at
	// least three nodes, else 1.
	Replicas int
	// SyncAlways makes the embedded server fsync every message before
	// acknowledging it; otherwise it fsyncs every SyncInterval (0: the
	// server's default, 2 minutes).
	SyncAlways   bool
	SyncInterval time.Duration
	// Wait bounds how long Start waits for JetStream to answer (a
	// clustered node needs a quorum of its peers up). Default 1 minute.
	Wait   time.Duration
	Logger *slog.Logger
}

// Node is a ready JetStream connection, and the embedded server if any.
type Node struct {
	Conn     *nats.Conn
	JS       jetstream.JetStream
	Replicas int
	// Name is the embedded server's name (empty with an external cluster).
	Name string
	srv  *server.Server
	log  *slog.Logger
}

// Embedded reports whether the node runs its own server.
func (c Config) Embedded() bool { return len(c.URLs) == 0 }

// Validate checks the combination of settings without starting anything.
func (c Config) Validate() error {
	if len(c.URLs) > 0 {
		if c.Listen != "" || c.ClusterListen != "" || len(c.Routes) > 0 {
			return errors.New("--nats connects to an existing NATS cluster; it excludes --nats-listen, --cluster-listen and --cluster")
		}
		for _, u := range c.URLs {
			if _, err := url.Parse(u); err != nil || !strings.Contains(u, "://") {
				return fmt.Errorf("--nats: %q is not a nats://HOST:PORT URL", u)
			}
		}
	} else {
		if c.DataDir == "" {
			return errors.New("an embedded JetStream node needs --data-dir for its store")
		}
		if c.Listen == "" {
			return errors.New("an embedded JetStream node needs --nats-listen HOST:PORT (a node that does not listen cannot form routes)")
		}
		if (c.ClusterListen == "") != (len(c.Routes) == 0) {
			return errors.New("--cluster-listen and --cluster go together: this node's route address and every node's nats-route:// URL")
		}
		if err := checkHostPort("--nats-listen", c.Listen); err != nil {
			return err
		}
		if c.ClusterListen != "" {
			if err := checkHostPort("--cluster-listen", c.ClusterListen); err != nil {
				return err
			}
		}
		for _, r := range c.Routes {
			u, err := url.Parse(r)
			if err != nil || u.Scheme != "nats-route" || u.Port() == "" {
				return fmt.Errorf("--cluster: %q is not a nats-route://HOST:PORT URL", r)
			}
		}
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("--replicas %d: JetStream supports 1 to 5", c.Replicas)
	}
	return nil
}

func checkHostPort(flag, hp string) error {
	_, port, err := net.SplitHostPort(hp)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		return fmt.Errorf("%s %q: want HOST:PORT", flag, hp)
	}
	return nil
}

// Start starts the embedded server (or connects to the external cluster)
// and returns once JetStream answers requests, or fails after cfg.Wait.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Wait <= 0 {
		cfg.Wait = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	n := &Node{log: cfg.Logger.With("component", "nats")}
	ctx, cancel := context.WithTimeout(ctx, cfg.Wait)
	defer cancel()
	var err error
	if cfg.Embedded() {
		err = n.startServer(cfg)
	} else {
		n.Conn, err = nats.Connect(strings.Join(cfg.URLs, ","), nats.Name("zbroker"),
			nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true), n.connLogging())
	}
	if err != nil {
		n.Close()
		return nil, err
	}
	if n.JS, err = jetstream.New(n.Conn); err == nil {
		err = n.waitForJetStream(ctx)
	}
	if err != nil {
		n.Close()
		return nil, err
	}
	n.Replicas = cfg.Replicas
	if n.Replicas == 0 {
		nodes := len(cfg.Routes)
		if !cfg.Embedded() {
			nodes = len(n.Conn.Servers())
		}
		n.Replicas = 1
		if nodes >= 3 {
			n.Replicas = 3
		}
	}
	return n, nil
}

func (n *Node) startServer(cfg Config) error {
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	host, port, _ := net.SplitHostPort(cfg.Listen)
	opts := &server.Options{
		Host:         host,
		Port:         atoiPort(port),
		JetStream:    true,
		StoreDir:     dir,
		SyncAlways:   cfg.SyncAlways,
		SyncInterval: cfg.SyncInterval,
		NoSigs:       true,
		// zpipes chunks travel as single messages: the largest payload
		// a server allows without warning.
		MaxPayload: server.MAX_PAYLOAD_MAX_SIZE,
		// The clients are zbroker itself (in process) and whoever the
		// operator points at the port; no limit beyond the server's own.
	}
	if opts.ServerName, err = nodeName(dir, cfg); err != nil {
		return err
	}
	if cfg.ClusterListen != "" {
		chost, cport, _ := net.SplitHostPort(cfg.ClusterListen)
		opts.Cluster = server.ClusterOpts{Name: ClusterName, Host: chost, Port: atoiPort(cport)}
		opts.Routes = server.RoutesFromStr(strings.Join(cfg.Routes, ","))
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("nats server: %w", err)
	}
	lg := &logAdapter{log: n.log}
	srv.SetLoggerV2(lg, false, false, false)
	n.srv, n.Name = srv, opts.ServerName
	go srv.Start()
	// The server does not stop waiting on a failed listen: a fatal error
	// logged meanwhile ends the wait.
	for deadline := time.Now().Add(10 * time.Second); !srv.ReadyForConnections(50 * time.Millisecond); {
		if f := lg.fatal(); f != "" || time.Now().After(deadline) {
			return fmt.Errorf("nats server %s not listening on %s / %s: %s", opts.ServerName, cfg.Listen, cfg.ClusterListen, f)
		}
	}
	n.Conn, err = nats.Connect("", nats.InProcessServer(srv), nats.Name("zbroker"), nats.MaxReconnects(-1), n.connLogging())
	if err != nil {
		return fmt.Errorf("connecting to the embedded nats server: %w", err)
	}
	n.log.Info("embedded NATS node started", "server_name", opts.ServerName, "client", srv.ClientURL(),
		"cluster", cfg.ClusterListen, "routes", len(cfg.Routes), "store", filepath.Join(dir, "jetstream"))
	return nil
}

func atoiPort(s string) int {
	p, _ := strconv.Atoi(s)
	return p
}

// nodeName returns the name stored in dir, or makes one (host name and
// route port, unique in a cluster of hosts or of local test nodes) and
// stores it: a node's Raft identity derives from its name, so a restarted
// node must keep it.
func nodeName(dir string, cfg Config) (string, error) {
	path := filepath.Join(dir, "node-name")
	if b, err := os.ReadFile(path); err == nil {
		if name := strings.TrimSpace(string(b)); name != "" {
			return name, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "zbroker"
	}
	_, port, _ := net.SplitHostPort(cfg.ClusterListen)
	if port == "" {
		_, port, _ = net.SplitHostPort(cfg.Listen)
	}
	name := host + "-" + port
	if err := os.WriteFile(path, []byte(name+"\n"), 0o640); err != nil {
		return "", fmt.Errorf("--data-dir: %w", err)
	}
	return name, nil
}

func (n *Node) connLogging() nats.Option {
	return func(o *nats.Options) error {
		o.DisconnectedErrCB = func(_ *nats.Conn, err error) {
			if err != nil {
				n.log.Warn("NATS connection lost", "err", err)
			}
		}
		o.ReconnectedCB = func(c *nats.Conn) { n.log.Info("NATS connection restored", "server", c.ConnectedUrlRedacted()) }
		o.AsyncErrorCB = func(_ *nats.Conn, _ *nats.Subscription, err error) { n.log.Warn("NATS error", "err", err) }
		return nil
	}
}

// waitForJetStream asks for account info until it gets an answer: right
// after start, a request may go unanswered (no JetStream yet) or get
// "temporarily unavailable" while the cluster elects its meta leader.
func (n *Node) waitForJetStream(ctx context.Context) error {
	start := time.Now()
	lastLog := start
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := n.JS.AccountInfo(rctx)
		cancel()
		if err == nil {
			n.log.Info("JetStream ready", "after", time.Since(start).Round(time.Millisecond))
			return nil
		}
		if time.Since(lastLog) > 5*time.Second {
			n.log.Info("waiting for JetStream (a cluster needs a majority of its nodes up)", "err", err)
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("JetStream did not answer within the wait: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close drains the connection and shuts the embedded server down.
func (n *Node) Close() {
	if n.Conn != nil {
		n.Conn.Close()
	}
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
	}
}

// ClientURL is the embedded server's client URL ("" with an external one).
func (n *Node) ClientURL() string {
	if n.srv == nil {
		return ""
	}
	return n.srv.ClientURL()
}

// Retry runs a JetStream request with a short timeout per attempt until
// it succeeds, fails for good, or ctx ends. A request can go unanswered:
// right after a start, while a leader is elected, or when several nodes
// create the same stream at once (the meta leader answers one of them).
func Retry(ctx context.Context, what string, log *slog.Logger, req func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := req(actx)
		cancel()
		if err == nil || !retryable(err) {
			return err
		}
		if attempt%5 == 1 {
			log.Info("JetStream request unanswered; retrying", "what", what, "attempt", attempt, "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// retryable tells the errors a later attempt may not get: no answer, no
// leader or quorum yet.
func retryable(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code == 503 || apiErr.Code == 408
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

package clone

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zbroker/zbroker/zmtp"
)

// ClientOptions configure a Client. Zero fields take their defaults.
type ClientOptions struct {
	// Name of the broker, for the default endpoints. Default "default".
	Name string
	// Endpoints override those derived from Name.
	SnapshotEndpoint  string
	PublisherEndpoint string
	CollectorEndpoint string
	// Subtree is the key prefix the client mirrors ("" for everything).
	Subtree string
	// HeartbeatTimeout: a server silent for this long (no update, no
	// HUGZ) is taken for dead and the client resynchronizes. Default 3s
	// (three of the server's default HUGZ intervals).
	HeartbeatTimeout time.Duration
	// RetryInterval is the pause between reconnection attempts. Default
	// 200ms.
	RetryInterval time.Duration
	Logger        *slog.Logger
	// BrokerUID is the uid the broker must run as on ipc (root is always
	// trusted); default our own. Another uid is refused with a
	// *zmtp.UntrustedBrokerError: it may be a squatter on the name.
	BrokerUID int
	// Curve, for a tcp endpoint, connects with CURVE (docs/curve.md):
	// the broker's public key in ServerKey and our key pair. It is not
	// used on ipc, where the broker speaks NULL.
	Curve *zmtp.CurveOptions
}

func (o ClientOptions) withDefaults() ClientOptions {
	if o.Name == "" {
		o.Name = "default"
	}
	defaultEndpoints(o.Name, &o.SnapshotEndpoint, &o.PublisherEndpoint, &o.CollectorEndpoint)
	if o.HeartbeatTimeout <= 0 {
		o.HeartbeatTimeout = 3 * time.Second
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = 200 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Update is one change to the client's copy, delivered to watchers in
// sequence order.
type Update struct {
	Key   string
	Value []byte // nil: the key was deleted
	Seq   uint64 // the server's sequence number (0 in a resync)
	UUID  []byte
	Props []Prop
	// Resync marks changes found by comparing the copy with a fresh
	// snapshot after the client reconnected (e.g. a server restart).
	Resync bool
}

// ErrNotConnected is returned by Set and Delete between connections.
var ErrNotConnected = errors.New("clone: not connected to a server")

// ErrResynced is returned by SetWait when the client resynchronized
// (reconnected and took a new snapshot) before its update came back, so
// whether the server applied it is unknown: check the value with Get.
var ErrResynced = errors.New("clone: resynchronized before the update was confirmed")

// Client keeps a consistent local copy of one subtree of a Clone server's
// map. Its copy changes only in the server's order: updates it publishes
// itself are applied when the server republishes them.
//
// On connecting (and reconnecting) it subscribes to the subtree and to
// HUGZ first, waits for the first message from the publisher (proof that
// the subscriptions are active), then asks for a snapshot and applies only
// updates numbered above the snapshot's KTHXBAI sequence. If the server
// goes silent for HeartbeatTimeout or a connection drops, the client
// reconnects and takes a new snapshot, replacing its copy; watchers get
// the differences as Resync updates. A server restarted without its map
// therefore shows as every key being deleted.
type Client struct {
	opts ClientOptions
	log  *slog.Logger

	mu       sync.Mutex
	kv       map[string]*Update
	seq      uint64
	syncs    int
	pub      *zmtp.Conn // to the collector; nil between connections
	watchers map[*watcher]struct{}
	waiters  map[string]chan error // by UUID: SetWait callers
	lastErr  error                 // why the last session ended, for Connect

	ready   chan struct{}
	quit    chan struct{}
	stopped chan struct{}
	closeMu sync.Mutex
	conns   []*zmtp.Conn // of the current session, closed by Close
}

// Connect starts a client and waits, until ctx ends, for its first
// snapshot. The client keeps reconnecting in the background until Close.
func Connect(ctx context.Context, opts ClientOptions) (*Client, error) {
	opts = opts.withDefaults()
	c := &Client{
		opts:     opts,
		log:      opts.Logger.With("service", "clone-client"),
		kv:       map[string]*Update{},
		watchers: map[*watcher]struct{}{},
		waiters:  map[string]chan error{},
		ready:    make(chan struct{}),
		quit:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	go c.run()
	select {
	case <-c.ready:
		return c, nil
	case <-ctx.Done():
		c.Close()
		c.mu.Lock()
		last := c.lastErr
		c.mu.Unlock()
		if last != nil { // e.g. an untrusted broker: say so, not just "timeout"
			return nil, fmt.Errorf("clone: no snapshot from %s: %w (last attempt: %w)", opts.SnapshotEndpoint, ctx.Err(), last)
		}
		return nil, fmt.Errorf("clone: no snapshot from %s: %w", opts.SnapshotEndpoint, ctx.Err())
	}
}

// Close disconnects and stops the client; watch channels are closed.
func (c *Client) Close() error {
	c.closeMu.Lock()
	select {
	case <-c.quit:
	default:
		close(c.quit)
	}
	for _, cn := range c.conns {
		cn.Close()
	}
	c.closeMu.Unlock()
	<-c.stopped
	return nil
}

// Get returns the value of key in the local copy.
func (c *Client) Get(key string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if u, ok := c.kv[key]; ok {
		return u.Value, true
	}
	return nil, false
}

// Dump returns the local copy's pairs under prefix.
func (c *Client) Dump(prefix string) map[string][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string][]byte{}
	for k, u := range c.kv {
		if strings.HasPrefix(k, prefix) {
			out[k] = u.Value
		}
	}
	return out
}

// Seq is the sequence number of the last update applied.
func (c *Client) Seq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq
}

// Syncs counts the snapshots taken (1 after Connect, more after
// reconnections).
func (c *Client) Syncs() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.syncs
}

// Set publishes key=value to the server; ttl > 0 makes it ephemeral. An
// empty value deletes the key. The local copy changes when the server
// republishes the update.
func (c *Client) Set(key string, value []byte, ttl time.Duration) error {
	_, _, err := c.send(key, value, ttl, false)
	return err
}

// Delete publishes the deletion of key.
func (c *Client) Delete(key string) error { return c.Set(key, nil, 0) }

// SetWait is Set, then waits until the server's republished update has
// been applied to the local copy (key must be in the client's subtree).
// If the client resynchronizes first it returns ErrResynced.
func (c *Client) SetWait(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if !strings.HasPrefix(key, c.opts.Subtree) {
		return fmt.Errorf("clone: SetWait of %q outside the client's subtree %q would never be confirmed", key, c.opts.Subtree)
	}
	done, id, err := c.send(key, value, ttl, true)
	if err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.waiters, id)
		c.mu.Unlock()
		return ctx.Err()
	}
}

func (c *Client) send(key string, value []byte, ttl time.Duration, wait bool) (chan error, string, error) {
	switch key {
	case KeyHUGZ, KeyKTHXBAI, KeyICANHAZ:
		return nil, "", fmt.Errorf("clone: %q is a reserved key", key)
	}
	m := KVMsg{Key: key, UUID: make([]byte, 16), Body: value}
	rand.Read(m.UUID)
	if ttl > 0 {
		m.SetProp("ttl", strconv.FormatFloat(ttl.Seconds(), 'f', -1, 64))
	}
	msg, err := m.Encode()
	if err != nil {
		return nil, "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pub == nil {
		return nil, "", ErrNotConnected
	}
	var done chan error
	if wait {
		done = make(chan error, 1)
		c.waiters[string(m.UUID)] = done
	}
	if err := c.pub.Send(msg); err != nil {
		delete(c.waiters, string(m.UUID))
		return nil, "", ErrNotConnected
	}
	return done, string(m.UUID), nil
}

// Watch returns a channel of the updates applied from now on, in order,
// and a function that stops the watch. The channel buffers without
// bound, so a slow reader never holds the client back.
func (c *Client) Watch() (<-chan Update, func()) {
	w := newWatcher()
	c.mu.Lock()
	select {
	case <-c.stopped:
		c.mu.Unlock()
		w.close()
		return w.out, func() {}
	default:
	}
	c.watchers[w] = struct{}{}
	c.mu.Unlock()
	return w.out, func() {
		c.mu.Lock()
		_, ok := c.watchers[w]
		delete(c.watchers, w)
		c.mu.Unlock()
		if ok {
			w.close()
		}
	}
}

func (c *Client) run() {
	defer func() {
		c.mu.Lock()
		c.pub = nil
		for w := range c.watchers {
			w.close()
		}
		c.watchers = map[*watcher]struct{}{}
		c.mu.Unlock()
		close(c.stopped)
	}()
	for {
		err := c.session()
		select {
		case <-c.quit:
			return
		default:
		}
		c.mu.Lock()
		c.lastErr = err
		c.mu.Unlock()
		c.log.Info("clone server lost, resynchronizing", "err", err)
		select {
		case <-c.quit:
			return
		case <-time.After(c.opts.RetryInterval):
		}
	}
}

var errSilent = errors.New("clone: no HUGZ from the server")

type recvResult struct {
	frames [][]byte
	err    error
}

// track registers a session's connection for Close, or closes it at once
// if the client is closing.
func (c *Client) track(cn *zmtp.Conn) bool {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	select {
	case <-c.quit:
		cn.Close()
		return false
	default:
	}
	c.conns = append(c.conns, cn)
	return true
}

func (c *Client) dial(ep, typ string) (*zmtp.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.HeartbeatTimeout)
	defer cancel()
	cn, err := zmtp.Dial(ctx, ep, zmtp.Options{SocketType: typ, Logger: c.opts.Logger, BrokerUID: c.opts.BrokerUID, Curve: c.opts.Curve.ForEndpoint(ep)})
	if err != nil {
		return nil, err
	}
	if !c.track(cn) {
		return nil, zmtp.ErrClosed
	}
	return cn, nil
}

// session connects, synchronizes and applies updates until the server is
// lost.
func (c *Client) session() error {
	defer func() {
		c.closeMu.Lock()
		for _, cn := range c.conns {
			cn.Close()
		}
		c.conns = nil
		c.closeMu.Unlock()
		c.mu.Lock()
		c.pub = nil
		c.mu.Unlock()
	}()
	sub, err := c.dial(c.opts.PublisherEndpoint, "SUB")
	if err != nil {
		return err
	}
	// Subtree first: any message proves it is registered.
	sub.Send([][]byte{append([]byte{1}, c.opts.Subtree...)})
	if !strings.HasPrefix(KeyHUGZ, c.opts.Subtree) {
		sub.Send([][]byte{append([]byte{1}, KeyHUGZ...)})
	}
	live := make(chan recvResult, 256)
	ended := make(chan struct{})
	defer close(ended)
	go func() {
		for {
			f, err := sub.Recv()
			select {
			case live <- recvResult{f, err}:
			case <-ended: // the session is over (sub is closed by now)
				return
			}
			if err != nil {
				return
			}
		}
	}()
	pub, err := c.dial(c.opts.CollectorEndpoint, "PUB")
	if err != nil {
		return err
	}
	go func() { // the server's subscription; an error ends the session
		for {
			if _, err := pub.Recv(); err != nil {
				sub.Close()
				return
			}
		}
	}()
	timer := time.NewTimer(c.opts.HeartbeatTimeout)
	defer timer.Stop()
	var first recvResult
	select {
	case first = <-live:
		if first.err != nil {
			return first.err
		}
	case <-timer.C:
		return errSilent
	case <-c.quit:
		return zmtp.ErrClosed
	}
	kv, seq, err := c.snapshot()
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.pub = pub
	c.resync(kv, seq)
	c.mu.Unlock()
	select {
	case <-c.ready:
	default:
		close(c.ready)
	}
	next := first
	for {
		if next.err != nil {
			return next.err
		}
		if err := c.apply(next.frames); err != nil {
			c.log.Warn("bad update from server", "err", err)
		}
		timer.Reset(c.opts.HeartbeatTimeout)
		select {
		case next = <-live:
		case <-timer.C:
			return errSilent
		case <-c.quit:
			return zmtp.ErrClosed
		}
	}
}

// snapshot asks for the subtree and collects it up to KTHXBAI.
func (c *Client) snapshot() (map[string]*Update, uint64, error) {
	dealer, err := c.dial(c.opts.SnapshotEndpoint, "DEALER")
	if err != nil {
		return nil, 0, err
	}
	defer dealer.Close()
	if err := dealer.Send([][]byte{[]byte(KeyICANHAZ), []byte(c.opts.Subtree)}); err != nil {
		return nil, 0, err
	}
	// Recv has no deadline: a silent server's connection is closed.
	t := time.AfterFunc(c.opts.HeartbeatTimeout, func() { dealer.Close() })
	defer t.Stop()
	kv := map[string]*Update{}
	for {
		f, err := dealer.Recv()
		if err != nil {
			return nil, 0, err
		}
		t.Reset(c.opts.HeartbeatTimeout)
		m, err := Decode(f)
		if err != nil {
			return nil, 0, err
		}
		if m.Key == KeyKTHXBAI {
			return kv, m.Seq, nil
		}
		if len(m.Body) > 0 {
			kv[m.Key] = toUpdate(m)
		}
	}
}

func toUpdate(m KVMsg) *Update {
	u := &Update{Key: m.Key, Seq: m.Seq, Props: m.Props}
	if len(m.UUID) > 0 {
		u.UUID = bytes.Clone(m.UUID)
	}
	if len(m.Body) > 0 {
		u.Value = bytes.Clone(m.Body)
	}
	return u
}

// resync replaces the copy with a snapshot and tells watchers what
// changed. Called with c.mu held.
func (c *Client) resync(kv map[string]*Update, seq uint64) {
	first := c.syncs == 0
	c.syncs++
	if !first {
		for k, old := range c.kv {
			if nu, ok := kv[k]; !ok {
				c.notify(Update{Key: k, UUID: old.UUID, Resync: true})
			} else if !bytes.Equal(nu.Value, old.Value) {
				u := *nu
				u.Seq, u.Resync = 0, true
				c.notify(u)
			}
		}
		for k, nu := range kv {
			if _, ok := c.kv[k]; !ok {
				u := *nu
				u.Seq, u.Resync = 0, true
				c.notify(u)
			}
		}
	}
	c.kv, c.seq = kv, seq
	// A SetWait whose update did not come back before the resync can no
	// longer tell whether the server applied it: say so instead of
	// waiting forever.
	for id, done := range c.waiters {
		done <- ErrResynced
		delete(c.waiters, id)
	}
}

// apply handles one message from the publisher: HUGZ only proves the
// server alive; updates at or below the copy's sequence are already in it.
func (c *Client) apply(frames [][]byte) error {
	m, err := Decode(frames)
	if err != nil {
		return err
	}
	if m.Key == KeyHUGZ {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m.Seq <= c.seq {
		return nil
	}
	c.seq = m.Seq
	if !strings.HasPrefix(m.Key, c.opts.Subtree) {
		return nil
	}
	u := toUpdate(m)
	if u.Value == nil {
		delete(c.kv, m.Key)
	} else {
		c.kv[m.Key] = u
	}
	if done, ok := c.waiters[string(m.UUID)]; ok && len(m.UUID) > 0 {
		delete(c.waiters, string(m.UUID))
		done <- nil
	}
	c.notify(*u)
	return nil
}

// notify hands u to every watcher. Called with c.mu held.
func (c *Client) notify(u Update) {
	for w := range c.watchers {
		w.push(u)
	}
}

// watcher is an unbounded queue in front of a channel.
type watcher struct {
	mu   sync.Mutex
	q    []Update
	once sync.Once
	wake chan struct{}
	done chan struct{}
	out  chan Update
}

func newWatcher() *watcher {
	w := &watcher{wake: make(chan struct{}, 1), done: make(chan struct{}), out: make(chan Update)}
	go w.loop()
	return w
}

func (w *watcher) push(u Update) {
	w.mu.Lock()
	w.q = append(w.q, u)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *watcher) close() { w.once.Do(func() { close(w.done) }) }

func (w *watcher) loop() {
	defer close(w.out)
	for {
		w.mu.Lock()
		q := w.q
		w.q = nil
		w.mu.Unlock()
		for _, u := range q {
			select {
			case w.out <- u:
			case <-w.done:
				return
			}
		}
		select {
		case <-w.wake:
		case <-w.done:
			return
		}
	}
}

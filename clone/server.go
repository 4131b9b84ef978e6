package clone

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zbroker/zbroker/internal/deque"
	"github.com/zbroker/zbroker/internal/owner"
	"github.com/zbroker/zbroker/zmtp"
)

// Default endpoints of the broker called name.
func SnapshotEndpoint(name string) string  { return "ipc://@/clone/" + name + "/snapshot" }
func PublisherEndpoint(name string) string { return "ipc://@/clone/" + name + "/updates" }
func CollectorEndpoint(name string) string { return "ipc://@/clone/" + name + "/collector" }

// Options configure a Clone server. Zero fields take their defaults.
type Options struct {
	// Name of the broker; it derives the default endpoints. Default
	// "default".
	Name string
	// Endpoints override those derived from Name, e.g. "tcp://*:5556",
	// "tcp://*:5557", "tcp://*:5558" for the CHP convention P, P+1, P+2.
	SnapshotEndpoint  string
	PublisherEndpoint string
	CollectorEndpoint string
	// HeartbeatInterval is how often HUGZ is published. Default 1s.
	HeartbeatInterval time.Duration
	// SubscriberQueueLimit bounds the bytes of updates waiting to be
	// written to one subscriber. A subscriber past it has stopped keeping
	// up: it is disconnected (a client then resynchronizes from a fresh
	// snapshot) rather than buffered for without end or silently skipped.
	// Default 64 MiB.
	SubscriberQueueLimit int64
	// MaxValueSize bounds one update's body; larger updates are refused
	// (the sending connection is dropped). Default 16 MiB.
	MaxValueSize int64
	// MaxKeys and MaxBytes bound the map: an update adding a key past
	// MaxKeys, or taking the map's size (keys, values, properties and 128
	// bytes per key) past MaxBytes, is refused and logged. Defaults
	// 1,000,000 keys and 1 GiB.
	MaxKeys  int
	MaxBytes int64
	// Journal keeps the map across restarts; default MemoryJournal{}.
	// The server loads it at start and closes it when it stops.
	Journal Journal
	// Replica, if set, holds the map instead (cluster mode; see Replica).
	Replica Replica
	Logger  *slog.Logger
	// Guard admits peers (see zmtp.Access); share one between services to
	// make its limits broker-wide. Default: our own uid and root only.
	Guard *zmtp.Guard
	// Curve puts the tcp endpoints on CURVE (docs/curve.md): clients
	// must know the server's key and, if Curve.Authorize says so, hold an
	// admitted key. ipc endpoints keep NULL under the Guard's rules.
	Curve *zmtp.CurveOptions
}

// WithDefaults returns o with its zero fields set to their defaults: the
// values a Server started with o uses.
func (o Options) WithDefaults() Options {
	if o.Name == "" {
		o.Name = "default"
	}
	defaultEndpoints(o.Name, &o.SnapshotEndpoint, &o.PublisherEndpoint, &o.CollectorEndpoint)
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = time.Second
	}
	if o.MaxValueSize <= 0 {
		o.MaxValueSize = 16 << 20
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = 1_000_000
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 30
	}
	if o.SubscriberQueueLimit <= 0 {
		o.SubscriberQueueLimit = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Journal == nil {
		o.Journal = MemoryJournal{}
	}
	return o
}

// defaultEndpoints fills in the endpoints not given, from the broker name;
// servers and clients agree on them this way.
func defaultEndpoints(name string, snapshot, publisher, collector *string) {
	if *snapshot == "" {
		*snapshot = SnapshotEndpoint(name)
	}
	if *publisher == "" {
		*publisher = PublisherEndpoint(name)
	}
	if *collector == "" {
		*collector = CollectorEndpoint(name)
	}
}

// Endpoints are where a server listens.
type Endpoints struct {
	Snapshot, Publisher, Collector string
}

// Stats is a snapshot of the server's state.
type Stats struct {
	Keys        int    // keys held
	Sequence    uint64 // last sequence number assigned
	Subscribers int    // publisher connections
	Publishers  int    // collector connections
	Updates     uint64 // updates accepted from the collector
	Expired     uint64 // ephemeral values expired (each published as a delete)
	Snapshots   uint64 // ICANHAZ? requests answered
	Rejected    uint64 // malformed or refused messages dropped
}

// Server is a running Clone server. One goroutine owns all state and is
// fed by the three sockets' events, so there are no locks.
type Server struct {
	opts    Options
	log     *slog.Logger
	snap    *zmtp.Socket
	pub     *zmtp.Socket
	coll    *zmtp.Socket
	queries chan chan Stats
	calls   chan func() // see stats.go
	quit    chan struct{}
	stopped chan struct{}
	final   Stats
	store   *store
	seq     uint64
	journal Journal
	// unstored holds the updates recorded but not yet stored by the
	// journal, in order: they are published only once stored. Snapshots
	// are not held back (a stream of updates would starve them): one
	// may show a change that a crash in the next milliseconds loses; a
	// client then sees the sequence go back and resynchronizes.
	unstored deque.Deque[update]
	subs     map[*zmtp.Conn]*subscriber
	// waitingSnaps holds the subtrees a snapshot peer asked for while its
	// previous snapshot was still being written.
	waitingSnaps map[*zmtp.Conn][]string
	closeOnce    sync.Once
	producers    map[*zmtp.Conn]struct{}
	st           Stats
	rejects      rejectLog
}

// update is a kvmsg to publish once the journal has stored it.
type update struct {
	seq uint64
	key string
	msg [][]byte
}

// maxTopics caps the prefixes one subscriber may hold, so one peer cannot
// make every publish slow or hold unbounded memory.
const maxTopics = 10000

// subscriber is a publisher-socket peer and its prefixes (with counts, as
// a SUB may subscribe to one prefix more than once).
type subscriber struct {
	conn   *zmtp.Conn
	topics map[string]int
}

// matches scans the prefixes, or, when there are more of them than the
// key has prefixes, looks each of the key's prefixes up, so a subscriber
// with many topics costs a publish at most len(key)+1 lookups.
func (s *subscriber) matches(key string) bool {
	if len(s.topics) > len(key)+1 {
		for i := 0; i <= len(key); i++ {
			if s.topics[key[:i]] > 0 {
				return true
			}
		}
		return false
	}
	for t := range s.topics {
		if strings.HasPrefix(key, t) {
			return true
		}
	}
	return false
}

// Start binds the three endpoints and starts serving.
func Start(opts Options) (*Server, error) {
	opts = opts.WithDefaults()
	log := opts.Logger.With("service", "clone", "name", opts.Name)
	// The transport logs each connection once, naming the socket.
	zo := func(socket, typ string, max int64, endpoint string) zmtp.Options {
		return zmtp.Options{SocketType: typ, MaxMessageSize: max, Logger: log.With("socket", socket), Guard: opts.Guard, Curve: opts.Curve.ForEndpoint(endpoint)}
	}
	snap, err := zmtp.Listen(opts.SnapshotEndpoint, zo("snapshot", "ROUTER", 4096, opts.SnapshotEndpoint))
	if err != nil {
		return nil, err
	}
	pub, err := zmtp.Listen(opts.PublisherEndpoint, zo("updates", "PUB", 4096, opts.PublisherEndpoint))
	if err != nil {
		snap.Close()
		return nil, err
	}
	coll, err := zmtp.Listen(opts.CollectorEndpoint, zo("collector", "SUB", opts.MaxValueSize+64<<10, opts.CollectorEndpoint))
	if err != nil {
		snap.Close()
		pub.Close()
		return nil, err
	}
	s := &Server{
		opts:         opts,
		log:          log,
		snap:         snap,
		pub:          pub,
		coll:         coll,
		queries:      make(chan chan Stats),
		calls:        make(chan func()),
		quit:         make(chan struct{}),
		stopped:      make(chan struct{}),
		store:        newStore(),
		subs:         map[*zmtp.Conn]*subscriber{},
		waitingSnaps: map[*zmtp.Conn][]string{},
		producers:    map[*zmtp.Conn]struct{}{},
		journal:      opts.Journal,
	}
	if err := s.load(); err != nil {
		snap.Close()
		pub.Close()
		coll.Close()
		return nil, err
	}
	if opts.Replica != nil {
		initial, seq := opts.Replica.Initial()
		for _, e := range initial {
			s.store.put(e.Key, &entry{Entry: e})
		}
		s.seq = seq
	}
	go s.run()
	return s, nil
}

// Endpoints returns the bound endpoints (with real ports for tcp ":0").
func (s *Server) Endpoints() Endpoints {
	return Endpoints{s.snap.Endpoint(), s.pub.Endpoint(), s.coll.Endpoint()}
}

// Stats returns a snapshot taken by the owning goroutine.
func (s *Server) Stats() Stats { return owner.Ask(s.queries, s.stopped, &s.final) }

// Close stops the server and returns its final state, and closes the
// journal (the memory journal keeps nothing).
func (s *Server) Close() Stats {
	s.closeOnce.Do(func() { close(s.quit) })
	<-s.stopped
	return s.final
}

func (s *Server) run() {
	defer close(s.stopped)
	hb := time.NewTicker(s.opts.HeartbeatInterval)
	defer hb.Stop()
	snapCheck := time.NewTicker(50 * time.Millisecond)
	defer snapCheck.Stop()
	ttl := time.NewTimer(time.Hour)
	defer ttl.Stop()
	snapEv, pubEv, collEv := s.snap.Events(), s.pub.Events(), s.coll.Events()
	notes := s.journal.Notes()
	var replicated <-chan Change
	if s.opts.Replica != nil {
		replicated = s.opts.Replica.Changes()
	}
	for {
		s.armTTL(ttl)
		select {
		case batch := <-snapEv:
			for _, ev := range batch.Events {
				s.onSnapshot(ev)
			}
			batch.Release()
		case batch := <-pubEv:
			for _, ev := range batch.Events {
				s.onPublisher(ev)
			}
			batch.Release()
		case batch := <-collEv:
			for _, ev := range batch.Events {
				s.onCollector(ev)
			}
			batch.Release()
		case <-snapCheck.C:
			s.serveWaitingSnapshots()
		case <-hb.C:
			s.publish(KeyHUGZ, frames(KeyHUGZ, 0, nil, nil, nil))
		case <-ttl.C:
			s.expire(time.Now())
		case n := <-notes:
			s.stored(s.journal.Handle(n))
		case c, ok := <-replicated:
			if !ok {
				s.log.Error("the replicated Clone map stopped delivering changes; this server's map no longer changes")
				replicated = nil
				continue
			}
			s.applyReplicated(c)
		case q := <-s.queries:
			q <- s.stats()
		case f := <-s.calls:
			f()
		case <-s.quit:
			s.final = s.stats()
			// Close the sockets before draining: Close closes the
			// event channels once their goroutines end.
			done := make(chan struct{})
			go func() {
				s.snap.Close()
				s.pub.Close()
				s.coll.Close()
				close(done)
			}()
			for snapEv != nil || pubEv != nil || collEv != nil {
				select {
				case _, ok := <-snapEv:
					if !ok {
						snapEv = nil
					}
				case _, ok := <-pubEv:
					if !ok {
						pubEv = nil
					}
				case _, ok := <-collEv:
					if !ok {
						collEv = nil
					}
				}
			}
			<-done
			if err := s.journal.Close(); err != nil {
				s.log.Error("closing the journal", "err", err)
			}
			return
		}
	}
}

func (s *Server) stats() Stats {
	st := s.st
	st.Keys = len(s.store.m)
	st.Sequence = s.seq
	st.Subscribers = len(s.subs)
	st.Publishers = len(s.producers)
	return st
}

// armTTL points the timer at the next expiry. A replica expires values
// itself, so that every host publishes the same delete.
func (s *Server) armTTL(t *time.Timer) {
	at := s.store.nextExpiry()
	d := time.Hour
	if !at.IsZero() && s.opts.Replica == nil {
		d = max(time.Until(at), 0)
	}
	t.Reset(d)
}

// Rejected messages are logged at Warn with their reason, at most
// rejectLogBurst in each rejectLogWindow (the rest at Debug, and counted
// in the next Warn), so a peer sending garbage in a loop cannot flood the
// log while a producer with a bug is still told why its updates vanish.
const (
	rejectLogBurst  = 5
	rejectLogWindow = 10 * time.Second
)

type rejectLog struct {
	start      time.Time
	logged     int
	suppressed int
}

func (s *Server) reject(ev zmtp.Event, what string, err error) {
	s.st.Rejected++
	r, now := &s.rejects, time.Now()
	if now.Sub(r.start) >= rejectLogWindow {
		r.start, r.logged = now, 0
	}
	attrs := []any{"socket", what, "peer", ev.Conn.RemoteAddr(), "reason", err}
	if r.logged >= rejectLogBurst {
		r.suppressed++
		s.log.Debug("message rejected", attrs...)
		return
	}
	r.logged++
	if r.suppressed > 0 {
		attrs = append(attrs, "not_logged_before", r.suppressed)
		r.suppressed = 0
	}
	s.log.Warn("message rejected", attrs...)
}

// onSnapshot answers ICANHAZ? with the subtree's KVSYNCs and KTHXBAI.
func (s *Server) onSnapshot(ev zmtp.Event) {
	if ev.Type == zmtp.Disconnected {
		delete(s.waitingSnaps, ev.Conn)
	}
	if ev.Type != zmtp.Message {
		return
	}
	if len(ev.Frames) != 2 || string(ev.Frames[0]) != KeyICANHAZ {
		s.reject(ev, "snapshot", malformed("not [ICANHAZ?, subtree]"))
		return
	}
	subtree := string(ev.Frames[1])
	// One snapshot in flight per connection: a peer asking again before
	// it has read the last one waits (and is not read meanwhile), so it
	// cannot make the server hold many copies of the map.
	if msgs, _ := ev.Conn.Queued(); msgs > 0 || len(s.waitingSnaps[ev.Conn]) > 0 {
		if len(s.waitingSnaps[ev.Conn]) == 0 {
			ev.Conn.Pause()
		}
		s.waitingSnaps[ev.Conn] = append(s.waitingSnaps[ev.Conn], subtree)
		return
	}
	s.sendSnapshot(ev.Conn, subtree)
}

// serveWaitingSnapshots sends the next waiting snapshot to each peer that
// has read its last one.
func (s *Server) serveWaitingSnapshots() {
	for c, subtrees := range s.waitingSnaps {
		if msgs, _ := c.Queued(); msgs > 0 {
			continue
		}
		s.sendSnapshot(c, subtrees[0])
		if len(subtrees) == 1 {
			delete(s.waitingSnaps, c)
			c.Resume()
		} else {
			s.waitingSnaps[c] = subtrees[1:]
		}
	}
}

func (s *Server) sendSnapshot(c *zmtp.Conn, subtree string) {
	s.st.Snapshots++
	now := time.Now()
	for _, key := range s.store.subtree(subtree) {
		e := s.store.m[key]
		props := e.Props
		if !e.Expires.IsZero() {
			// A snapshot tells what is left of the time to live.
			left := max(e.Expires.Sub(now), time.Millisecond)
			props = withProp(props, "ttl", strconv.FormatFloat(left.Seconds(), 'f', 3, 64))
		}
		pb, _ := encodeProps(props)
		c.Send(frames(key, e.Seq, e.UUID, pb, e.Body))
	}
	c.Send(frames(KeyKTHXBAI, s.seq, nil, nil, []byte(subtree)))
}

func withProp(props []Prop, name, value string) []Prop {
	out := make([]Prop, 0, len(props))
	for _, p := range props {
		if p.Name != name {
			out = append(out, p)
		}
	}
	return append(out, Prop{name, value})
}

// onPublisher tracks subscriptions. A peer that subscribes to HUGZ gets
// one at once: a client that sees it knows its subscriptions are active
// and may ask for its snapshot without missing an update.
func (s *Server) onPublisher(ev zmtp.Event) {
	switch ev.Type {
	case zmtp.Connected:
		s.subs[ev.Conn] = &subscriber{conn: ev.Conn, topics: map[string]int{}}
	case zmtp.Disconnected:
		delete(s.subs, ev.Conn)
	case zmtp.Message:
		sub := s.subs[ev.Conn]
		if sub == nil || len(ev.Frames) != 1 || len(ev.Frames[0]) == 0 || ev.Frames[0][0] > 1 {
			return // a PUB ignores anything else its subscribers send
		}
		topic := string(ev.Frames[0][1:])
		if ev.Frames[0][0] == 1 {
			if len(sub.topics) >= maxTopics && sub.topics[topic] == 0 {
				// Ignoring it would silently starve the subscriber.
				s.log.Warn("subscriber over the prefix limit; disconnecting it", "peer", ev.Conn.RemoteAddr(), "limit", maxTopics)
				ev.Conn.Close()
				delete(s.subs, ev.Conn)
				return
			}
			sub.topics[topic]++
			if sub.matches(KeyHUGZ) {
				ev.Conn.Send(frames(KeyHUGZ, 0, nil, nil, nil))
			}
		} else if n := sub.topics[topic]; n > 1 {
			sub.topics[topic] = n - 1
		} else {
			delete(sub.topics, topic)
		}
	}
}

// onCollector accepts KVSET updates from clients' PUB sockets.
func (s *Server) onCollector(ev zmtp.Event) {
	switch ev.Type {
	case zmtp.Connected:
		// A libzmq PUB sends nothing until subscribed to.
		s.producers[ev.Conn] = struct{}{}
		ev.Conn.Send([][]byte{{1}})
		return
	case zmtp.Disconnected:
		delete(s.producers, ev.Conn)
		if ev.Err != nil && !isEOF(ev.Err) {
			s.log.Debug("collector peer dropped", "peer", ev.Conn.RemoteAddr(), "err", ev.Err)
		}
		return
	}
	m, err := Decode(ev.Frames)
	if err != nil {
		s.reject(ev, "collector", err)
		return
	}
	if m.Key == KeyHUGZ || m.Key == KeyKTHXBAI || m.Key == KeyICANHAZ {
		s.reject(ev, "collector", malformed("update of reserved key %.64q", m.Key))
		return
	}
	var expires time.Time
	if v, ok := m.Prop("ttl"); ok && len(m.Body) > 0 {
		secs, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || secs < 0 || secs > 1e9 {
			s.reject(ev, "collector", malformed("update of key %.64q: ttl %.32q is not a number of seconds (0 to 1e9)", m.Key, v))
			return
		}
		if secs > 0 {
			expires = time.Now().Add(time.Duration(secs * float64(time.Second)))
		}
	}
	if err := s.overCap(&m); err != nil {
		s.reject(ev, "collector", err)
		return
	}
	s.st.Updates++
	e := &entry{Entry: Entry{
		Key:     m.Key,
		UUID:    bytes.Clone(m.UUID),
		Props:   m.Props,
		Body:    bytes.Clone(m.Body),
		Expires: expires,
	}}
	if s.opts.Replica != nil {
		var ttl time.Duration
		if !expires.IsZero() {
			ttl = time.Until(expires)
		}
		s.opts.Replica.Submit(e.Entry, ttl)
		return
	}
	s.seq++
	e.Seq = s.seq
	pb, _ := encodeProps(m.Props)
	s.store.put(m.Key, e)
	s.record(e.Entry, frames(m.Key, s.seq, e.UUID, pb, e.Body))
}

// applyReplicated stores and publishes a change the replica sequenced.
func (s *Server) applyReplicated(c Change) {
	if c.Seq <= s.seq {
		return // already in the initial map
	}
	s.seq = c.Seq
	if c.Expired {
		s.st.Expired++
	}
	pb, _ := encodeProps(c.Props)
	s.store.put(c.Key, &entry{Entry: c.Entry})
	s.publish(c.Key, frames(c.Key, c.Seq, c.UUID, pb, c.Body))
}

// expire deletes the values whose time is up and publishes the deletes.
func (s *Server) expire(now time.Time) {
	for _, e := range s.store.expired(now) {
		s.seq++
		s.st.Expired++
		s.record(Entry{Key: e.Key, Seq: s.seq, UUID: e.UUID}, frames(e.Key, s.seq, e.UUID, nil, nil))
	}
}

// record journals a change and publishes it once stored.
func (s *Server) record(u Entry, msg [][]byte) {
	if s.journal.Record(u) && s.unstored.Len() == 0 {
		s.publish(u.Key, msg)
	} else {
		s.unstored.PushBack(update{seq: u.Seq, key: u.Key, msg: msg})
	}
	if s.unstored.Len() == 0 && s.journal.CompactWanted() {
		s.compact()
	}
}

// stored publishes the updates the journal now has stored.
func (s *Server) stored(through uint64) {
	for s.unstored.Len() > 0 && s.unstored.At(0).seq <= through {
		u := s.unstored.PopFront()
		s.publish(u.key, u.msg)
	}
	if s.unstored.Len() == 0 && s.journal.CompactWanted() {
		s.compact()
	}
}

func (s *Server) compact() {
	start := time.Now()
	if err := s.journal.Compact(s.store.all, s.seq); err != nil {
		s.log.Error("compacting the journal; it keeps its history", "err", err)
		return
	}
	s.log.Debug("journal compacted", "keys", len(s.store.m), "seq", s.seq, "took", time.Since(start))
}

// startGrace is how long after a start the values that expired while the
// server was down are kept before their deletes are published, so that
// clients' subscriptions have reconnected and see the deletes.
func (s *Server) startGrace() time.Duration { return 2 * s.opts.HeartbeatInterval }

// load rebuilds the map from the journal.
func (s *Server) load() error {
	entries, seq, err := s.journal.Load()
	if err != nil {
		return err
	}
	s.seq = seq
	if len(entries) == 0 && seq == 0 {
		return nil
	}
	now := time.Now()
	graceEnd := now.Add(s.startGrace())
	expired := 0
	for _, e := range entries {
		if !e.Expires.IsZero() && e.Expires.Before(now) {
			e.Expires = graceEnd
			expired++
		}
		s.store.put(e.Key, &entry{Entry: e})
	}
	s.log.Info("clone map loaded", "keys", len(s.store.m), "seq", seq, "expired_while_down", expired)
	return nil
}

// publish sends one kvmsg to every subscriber whose prefixes match key.
// All of them share the frames, which nobody modifies.
func (s *Server) publish(key string, msg [][]byte) {
	for _, sub := range s.subs {
		if !sub.matches(key) {
			continue
		}
		if _, queued := sub.conn.Queued(); queued > s.opts.SubscriberQueueLimit {
			s.log.Warn("subscriber not keeping up; disconnecting it (a client resynchronizes)",
				"conn", sub.conn.ID(), "peer", sub.conn.RemoteAddr(), "queued_bytes", queued)
			sub.conn.Close()
			delete(s.subs, sub.conn)
			continue
		}
		sub.conn.Send(msg)
	}
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// Package cluster holds zbroker's JetStream backends: the Clone map in a
// replicated KV bucket (CloneKV) and zpipes' pipes in replicated streams.
package cluster

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/zbroker/zbroker/clone"
	"github.com/zbroker/zbroker/internal/jsname"
	"github.com/zbroker/zbroker/internal/natsnode"
)

// CloneBucket is the KV bucket holding the Clone map of every zbroker
// using the cluster.
const CloneBucket = "zbroker-clone"

// Headers carrying what a KV entry has no field for.
const (
	hdrUUID  = "Zbroker-Uuid"  // hex
	hdrProps = "Zbroker-Props" // the kvmsg properties frame, jsname-encoded
)

// cloneMarkerTTL is how long the bucket keeps the marker a TTL expiry
// leaves: a watcher (another host) sees the expiry as that marker.
const cloneMarkerTTL = time.Minute

// initialReadWait bounds one attempt at reading the bucket at start.
const initialReadWait = 15 * time.Second

// submitQueue bounds the updates waiting to be published. Clone's
// collector is fire-and-forget; when JetStream cannot keep up the server's
// goroutine waits (so the collector's peers are not read) rather than
// holding updates without bound.
const submitQueue = 4096

// CloneKV keeps the Clone map in a replicated KV bucket. Each update is
// published on the key's subject, $KV.zbroker-clone.<jsname key>, with its
// UUID and properties in headers and a per-message TTL (Nats-TTL, whole
// seconds, at least 1: rounded up); an ordered consumer reads the bucket
// back, and the stream sequence of each entry (the bucket revision) is
// its Clone sequence number on every host.
type CloneKV struct {
	js      jetstream.JetStream
	log     *slog.Logger
	subject string
	submit  chan submitted
	changes chan clone.Change
	initial []clone.Entry
	seq     uint64
	cons    jetstream.ConsumeContext
	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup
}

type submitted struct {
	e   clone.Entry
	ttl time.Duration
}

// OpenCloneKV creates (or adopts) the bucket with the given replicas, and
// reads it to the end before returning.
func OpenCloneKV(ctx context.Context, js jetstream.JetStream, replicas int, log *slog.Logger) (*CloneKV, error) {
	var status jetstream.KeyValueStatus
	err := natsnode.Retry(ctx, "creating the Clone bucket", log, func(ctx context.Context) error {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:         CloneBucket,
			Description:    "zbroker Clone map (keys and headers written by zbroker)",
			History:        1,
			Storage:        jetstream.FileStorage,
			Replicas:       replicas,
			LimitMarkerTTL: cloneMarkerTTL,
		})
		if err == nil {
			status, err = kv.Status(ctx)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("clone bucket: %w", err)
	}
	stream := status.(*jetstream.KeyValueBucketStatus).StreamInfo()
	c := &CloneKV{
		js:      js,
		log:     log.With("component", "clone-kv"),
		subject: "$KV." + CloneBucket + ".",
		submit:  make(chan submitted, submitQueue),
		changes: make(chan clone.Change, 1024),
		stop:    make(chan struct{}),
	}
	// A consumer made while this node's replica of the bucket catches up
	// (just restarted, under load) may stall: after a while the map is
	// read again through a new one.
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, initialReadWait)
		cons, err := js.OrderedConsumer(actx, stream.Config.Name, jetstream.OrderedConsumerConfig{
			DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
		})
		if err == nil {
			err = c.readInitial(actx, cons, stream.State.LastSeq)
		}
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("clone bucket: %w", err)
		}
		c.log.Info("reading the Clone bucket again", "attempt", attempt, "err", err)
		c.initial, c.seq = nil, 0
	}
	c.wg.Add(1)
	go c.publisher()
	return c, nil
}

// readInitial takes the bucket's entries up to the consumer's end, then
// leaves the consumer delivering later ones to Changes. lastSeq is the
// stream's last sequence before the consumer was made.
func (c *CloneKV) readInitial(ctx context.Context, cons jetstream.Consumer, lastSeq uint64) error {
	var mu sync.Mutex
	live := false
	handled := uint64(0) // stream sequence of the last message handled
	caught := make(chan struct{}, 1)
	handler := func(m jetstream.Msg) {
		ch, meta, ok := c.decode(m)
		mu.Lock()
		isLive := live
		if !isLive && ok {
			if len(ch.Body) > 0 {
				c.initial = append(c.initial, ch.Entry)
			}
			c.seq = max(c.seq, ch.Seq)
		}
		if !isLive && meta != nil {
			handled = meta.Sequence.Stream
		}
		mu.Unlock()
		if isLive && ok {
			select {
			case c.changes <- ch:
			case <-c.stop:
			}
		}
		if !isLive && meta != nil && meta.NumPending == 0 {
			select {
			case caught <- struct{}{}:
			default:
			}
		}
	}
	var err error
	if c.cons, err = cons.Consume(handler); err != nil {
		return fmt.Errorf("clone bucket: %w", err)
	}
	// An empty bucket delivers nothing to wait for, nor one whose last
	// entries expired meanwhile: the consumer's info says when nothing is
	// pending, and up to where it delivered; caught up is when the
	// handler took that far.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-caught:
			done = true
		case <-tick.C:
			info, err := cons.Info(ctx)
			if err != nil || info.NumPending > 0 {
				continue
			}
			mu.Lock()
			done = handled >= info.Delivered.Stream
			if info.Delivered.Stream == 0 {
				c.seq = max(c.seq, lastSeq) // nothing was ever delivered
			}
			mu.Unlock()
		case <-ctx.Done():
			c.cons.Stop()
			<-c.cons.Closed() // the handler runs no more: a retry starts afresh
			return fmt.Errorf("clone bucket: reading the map: %w", ctx.Err())
		}
	}
	mu.Lock()
	live = true
	mu.Unlock()
	return nil
}

// decode turns a bucket message into a change. ok is false for what is
// not a Clone update (a key zbroker did not write).
func (c *CloneKV) decode(m jetstream.Msg) (clone.Change, *jetstream.MsgMetadata, bool) {
	meta, err := m.Metadata()
	if err != nil {
		return clone.Change{}, nil, false
	}
	key, err := jsname.Decode(strings.TrimPrefix(m.Subject(), c.subject))
	if err != nil || len(key) == 0 || len(key) > clone.MaxKeySize {
		c.log.Warn("entry in the Clone bucket not written by zbroker; ignored", "subject", m.Subject())
		return clone.Change{}, meta, false
	}
	h := m.Headers()
	r := clone.Change{Entry: clone.Entry{Key: string(key), Seq: meta.Sequence.Stream}}
	if u := h.Get(hdrUUID); u != "" {
		r.UUID, _ = hex.DecodeString(u)
	}
	if p := h.Get(hdrProps); p != "" {
		if b, err := jsname.Decode(p); err == nil {
			if m, err := clone.Decode([][]byte{key, make([]byte, 8), nil, b, nil}); err == nil {
				r.Props = m.Props
			}
		}
	}
	switch {
	case h.Get("Nats-Marker-Reason") != "":
		// The marker a TTL expiry (MaxAge) or a removal leaves.
		r.Expired = h.Get("Nats-Marker-Reason") == "MaxAge"
	case h.Get("KV-Operation") != "":
		// DEL or PURGE: an empty body.
	default:
		r.Body = m.Data()
		if ttl, err := time.ParseDuration(h.Get(jetstream.MsgTTLHeader)); err == nil {
			r.Expires = meta.Timestamp.Add(ttl)
		}
	}
	return r, meta, true
}

// Initial implements clone.Replica.
func (c *CloneKV) Initial() ([]clone.Entry, uint64) {
	r := c.initial
	c.initial = nil
	return r, c.seq
}

// Changes implements clone.Replica.
func (c *CloneKV) Changes() <-chan clone.Change { return c.changes }

// Submit implements clone.Replica. It waits only when submitQueue updates
// are already waiting to be published.
func (c *CloneKV) Submit(e clone.Entry, ttl time.Duration) {
	select {
	case c.submit <- submitted{e, ttl}:
	case <-c.stop:
	}
}

// publisher publishes submitted updates in order, each retried until
// JetStream acknowledges it (a lost quorum delays updates, it does not
// drop them) or Close.
func (c *CloneKV) publisher() {
	defer c.wg.Done()
	for {
		var s submitted
		select {
		case s = <-c.submit:
		case <-c.stop:
			return
		}
		msg := c.message(s)
		for attempt := 0; ; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := c.js.PublishMsg(ctx, msg)
			cancel()
			if err == nil {
				break
			}
			if attempt == 0 || attempt%10 == 0 {
				c.log.Warn("Clone update not yet accepted by JetStream; retrying", "key", s.e.Key, "attempt", attempt+1, "err", err)
			}
			if isPermanent(err) {
				c.log.Error("Clone update refused by JetStream; dropped", "key", s.e.Key, "err", err)
				break
			}
			select {
			case <-c.stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// isPermanent tells the errors that a retry cannot cure.
func isPermanent(err error) bool {
	return err == nats.ErrMaxPayload || strings.Contains(err.Error(), "maximum payload") ||
		strings.Contains(err.Error(), "message size exceeds")
}

func (c *CloneKV) message(s submitted) *nats.Msg {
	m := nats.NewMsg(c.subject + jsname.Encode([]byte(s.e.Key)))
	if len(s.e.UUID) > 0 {
		m.Header.Set(hdrUUID, hex.EncodeToString(s.e.UUID))
	}
	if len(s.e.Props) > 0 {
		if frames, err := (&clone.KVMsg{Key: s.e.Key, Props: s.e.Props}).Encode(); err == nil {
			m.Header.Set(hdrProps, jsname.Encode(frames[3]))
		}
	}
	if len(s.e.Body) == 0 {
		m.Header.Set("KV-Operation", "DEL")
		return m
	}
	m.Data = s.e.Body
	if s.ttl > 0 {
		m.Header.Set(jetstream.MsgTTLHeader, TTLSeconds(s.ttl))
	}
	return m
}

// TTLSeconds is the per-message TTL JetStream gets for a Clone ttl:
// whole seconds, rounded up, at least one.
func TTLSeconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10) + "s"
}

// Close stops publishing and reading; updates still queued are dropped
// (Clone's collector acknowledges nothing).
func (c *CloneKV) Close() {
	c.stopped.Do(func() {
		close(c.stop)
		c.cons.Stop()
	})
	c.wg.Wait()
}

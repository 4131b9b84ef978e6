package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/zbroker/zbroker/internal/deque"
	"github.com/zbroker/zbroker/internal/jsname"
	"github.com/zbroker/zbroker/internal/natsnode"
	"github.com/zbroker/zbroker/zpipes"
)

// Consumer settings of every pipe's stream.
const (
	// readerConsumer is the one durable consumer of a pipe's stream:
	// whichever host serves the pipe's reader pulls from it.
	readerConsumer = "reader"
	// prefetch bounds the read-ahead: chunks delivered to the reader's
	// host and not yet handed to the reader (also bounded in bytes by
	// the pipe limit). The consumer's MaxAckPending is prefetch plus
	// what an acknowledging reader may hold unacknowledged
	// (--max-unacked): together the bound on duplicates after a failure.
	prefetch = 1000
	// ackWait is how long JetStream waits for a chunk's acknowledgement
	// before delivering it again: the stall after the reader's host dies.
	// Chunks still on their way to a live reader are kept from it by
	// progress acknowledgements every ackWait/3.
	ackWait = 10 * time.Second
)

// PipeStore keeps zpipes' chunks in JetStream: one stream per pipe
// (jsname.PipeStream, subject jsname.PipeSubject), work-queue retention
// (a chunk is deleted once acknowledged), MaxBytes the pipe limit with
// DiscardNew (a full pipe refuses a publish, which is retried with the
// WRITE's OK withheld; never DiscardOld, which would drop unread work).
//
// A WRITE's OK is sent once JetStream acknowledged the publish (stored
// on a quorum of the replicas). Each host has one publish of a pipe in
// flight, an atomic batch of the chunks queued meanwhile, retried whole
// before the next: per-writer order is kept, and the order across writers
// is the order of arrival at this host (hosts interleave as their batches
// reach the stream).
//
// Reading: the host serving a pipe's reader pulls from the durable
// consumer "reader" with explicit acknowledgement; a chunk is acknowledged
// only after it was written into the reader's socket. When the reader
// leaves, the chunks prefetched for it are negatively acknowledged in
// sequence order, so the next reader (on any host) gets them first, in
// order. When the reader's host dies they come again after ackWait.
//
// Threading: the zpipes server's goroutine owns every queue's state; the
// publisher and consumer goroutines report through notes.
type PipeStore struct {
	js        jetstream.JetStream
	log       *slog.Logger
	replicas  int
	pipeLimit atomic.Int64 // the streams' MaxBytes; changed by SetPipeLimit
	maxChunk  int64
	limitMu   sync.Mutex // one updateLimits at a time
	// reclaim attempts ended, streams they deleted, and chunks stored
	// in batches of more than one (for tests).
	reclaims, reclaimed, batched atomic.Int64
	maxUnacked                   int
	notes                        chan zpipes.Note
	queues                       map[string]*pipeQueue
	writers                      zpipes.WriterID
	// acks holds, per token (a writer connection), its appends in
	// order: their OKs must come back in that order, across pipes.
	acks map[any]*deque.Deque[*appendAck]
	stop chan struct{}
	wg   sync.WaitGroup
	dups uint64 // chunks delivered more than once (redeliveries)
	// leaving holds the spells stopping, until they handed back their
	// chunks.
	leaving   map[*reading]bool
	ticks     *time.Ticker
	leases    *leases
	elections elections
	// pubSeq numbers message and batch IDs; maxBatch is the largest
	// batch the servers take; unbatched is set once the store logged
	// that a stream refuses atomic batches.
	pubSeq    atomic.Uint64
	maxBatch  atomic.Int64
	unbatched atomic.Bool
}

type appendAck struct {
	token  any
	writer zpipes.WriterID
	stored bool
}

// Notes from the goroutines.
type (
	// published: acks' chunks, bytes in all, are stored.
	published struct {
		q     *pipeQueue
		acks  []*appendAck
		bytes int
	}
	fetched struct {
		q   *pipeQueue
		r   *reading
		msg jetstream.Msg
	}
	// refused: the spell could not serve the reader.
	refused struct {
		q      *pipeQueue
		r      *reading
		reason string
	}
	// stopped: the spell fetches no more; once the owner handled it,
	// every chunk delivered in the spell is held or handed back.
	stopped struct {
		q *pipeQueue
		r *reading
	}
	// spellStart: the spell reads on from stream sequence expect.
	spellStart struct {
		q      *pipeQueue
		r      *reading
		expect uint64
	}
	tick struct{}
)

// PipeConfig configures a PipeStore.
type PipeConfig struct {
	Replicas int
	// PipeLimit is each stream's MaxBytes, raised to hold one chunk of
	// MaxChunk bytes (see streamBytes).
	PipeLimit int64
	MaxChunk  int64
	// MaxUnacked is what an acknowledging reader may hold
	// unacknowledged (zpipes.Options.MaxUnacked): the consumer lets
	// that many chunks beyond the read-ahead be delivered unacknowledged.
	MaxUnacked int
	Logger     *slog.Logger
}

// NewPipeStore returns a store on js.
func NewPipeStore(js jetstream.JetStream, cfg PipeConfig) *PipeStore {
	log := cfg.Logger
	s := &PipeStore{
		js: js, log: log.With("component", "zpipes-js"), replicas: cfg.Replicas, maxUnacked: cfg.MaxUnacked, maxChunk: cfg.MaxChunk,
		notes:   make(chan zpipes.Note, 4*prefetch),
		queues:  map[string]*pipeQueue{},
		acks:    map[any]*deque.Deque[*appendAck]{},
		stop:    make(chan struct{}),
		ticks:   time.NewTicker(ackWait / 3),
		leases:  newLeases(js, cfg.Replicas, log),
		leaving: map[*reading]bool{},
	}
	s.pipeLimit.Store(s.streamBytes(cfg.PipeLimit))
	s.maxBatch.Store(maxAtomicBatch)
	var nc *nats.Conn
	if js != nil {
		nc = js.Conn()
	}
	if err := s.elections.watch(nc); err != nil {
		s.log.Warn("no leader advisories: a publish to a stream's old leader is retried after its timeout", "err", err)
	}
	s.wg.Go(func() {
		for {
			select {
			case <-s.ticks.C:
				select {
				case s.notes <- tick{}:
				case <-s.stop:
					return
				}
			case <-s.stop:
				return
			}
		}
	})
	return s
}

// Queue implements zpipes.Store.
func (s *PipeStore) Queue(pipe string) zpipes.Queue {
	q := s.queues[pipe]
	if q == nil {
		q = &pipeQueue{
			s: s, name: pipe, stream: jsname.PipeStream([]byte(pipe)), subject: jsname.PipeSubject([]byte(pipe)),
			unpublished: map[zpipes.WriterID]int{}, taken: map[uint64]jetstream.Msg{}, inBuf: map[uint64]bool{},
			early: map[uint64]jetstream.Msg{},
		}
		s.queues[pipe] = q
	}
	return q
}

// Recovered implements zpipes.Store: the chunks are in the streams, and
// come to this host when it serves a reader.
func (s *PipeStore) Recovered() []zpipes.RecoveredPipe { return nil }

// Notes implements zpipes.Store.
func (s *PipeStore) Notes() <-chan zpipes.Note { return s.notes }

// Handle implements zpipes.Store.
func (s *PipeStore) Handle(n zpipes.Note) zpipes.Done {
	var d zpipes.Done
	switch n := n.(type) {
	case published:
		d.Held = append(d.Held, zpipes.Held{Pipe: n.q.name, Chunks: -len(n.acks), Bytes: -int64(n.bytes)})
		for _, a := range n.acks {
			a.stored = true
			n.q.unpublished[a.writer]--
			fifo := s.acks[a.token]
			for fifo.Len() > 0 && fifo.At(0).stored {
				d.Stored = append(d.Stored, fifo.PopFront().token)
			}
			if fifo.Len() == 0 {
				delete(s.acks, a.token)
			}
		}
	case refused:
		if n.q.reader == n.r {
			if h := n.q.endSpell(); h.Chunks != 0 {
				d.Held = append(d.Held, h)
			}
			d.Refused = append(d.Refused, zpipes.Refusal{Pipe: n.q.name, Reason: n.reason})
		}
	case stopped:
		// Nothing more comes from the spell: hand back all it had, in
		// sequence order, before the lease goes to another host.
		r := n.r
		slices.SortFunc(r.leaving, func(a, b bufItem) int { return cmp.Compare(a.seq, b.seq) })
		for _, it := range r.leaving {
			it.msg.Nak()
		}
		r.leaving = nil
		delete(s.leaving, r)
		close(r.release)
	case fetched:
		q := n.q
		if q.reader != n.r {
			// The reader left: the chunk goes back with the others
			// when the spell has stopped.
			if meta, err := n.msg.Metadata(); err == nil {
				n.r.leaving = append(n.r.leaving, bufItem{n.msg, meta.Sequence.Stream, false})
			}
			return d
		}
		meta, err := n.msg.Metadata()
		if err != nil {
			return d
		}
		seq := meta.Sequence.Stream
		if meta.NumDelivered > 1 {
			s.dups++
		}
		switch {
		case q.taken[seq] != nil:
			q.taken[seq] = n.msg // delivered again while on its way: keep the newer handle
			n.r.give(1)
		case q.inBuf[seq] || q.early[seq] != nil:
			n.r.give(1)
		case seq < q.expect && q.wasSkipped(seq):
			// Skipped as missing, and here after all: late, but read.
			s.log.Warn("chunk skipped as missing arrived; delivered out of order", "pipe", q.name, "seq", seq)
			n.r.give(1)
			q.inBuf[seq] = true
			q.buf.PushBack(bufItem{n.msg, seq, false})
			d.Held = append(d.Held, zpipes.Held{Pipe: q.name, Chunks: 1, Bytes: int64(len(n.msg.Data()))})
			d.Ready = append(d.Ready, q.name)
		case seq < q.expect:
			// Handed to the reader already and acknowledged; the ack
			// was lost (a leader changed): acknowledge it again.
			n.msg.Ack()
			n.r.give(1)
		default:
			// Chunks reach the reader in stream order: one that comes
			// before those ahead of it (lost in transit, delivered again
			// after the ack wait) waits for them. It gives its room in
			// the read-ahead back: those come only if this host goes on
			// pulling (the consumer's MaxAckPending bounds them).
			inOrder := seq == q.expect
			if inOrder {
				n.r.ahead.Add(int64(len(n.msg.Data())))
			} else {
				n.r.give(1)
			}
			if len(q.early) == 0 {
				q.gapSince = time.Now()
			}
			q.early[seq] = n.msg
			if h := q.drainEarly(inOrder); h.Chunks > 0 {
				d.Held = append(d.Held, h)
				d.Ready = append(d.Ready, q.name)
			}
		}
	case spellStart:
		if n.q.reader == n.r {
			n.q.expect = n.expect
		}
	case heldNote:
		if s.queues[n.h.Pipe] != nil {
			d.Held = append(d.Held, n.h)
		}
	case tick:
		// Chunks on their way to a slow reader must not be delivered
		// again: tell JetStream they are in progress. A gap in the
		// sequence that outlives two ack waits is a chunk gone from the
		// stream (removed by an operator): skip it.
		for _, q := range s.queues {
			for _, m := range q.early {
				m.InProgress()
			}
			if len(q.early) > 0 && time.Since(q.gapSince) > 2*ackWait {
				first := slices.Min(slices.Collect(maps.Keys(q.early)))
				s.log.Warn("chunks missing from a pipe's stream; skipped", "pipe", q.name, "from", q.expect, "to", first-1)
				q.skipped = append(q.skipped[max(0, len(q.skipped)-maxSkipped+1):], [2]uint64{q.expect, first - 1})
				q.expect = first
				if h := q.drainEarly(false); h.Chunks > 0 {
					d.Held = append(d.Held, h)
					d.Ready = append(d.Ready, q.name)
				}
			}
			for _, m := range q.taken {
				m.InProgress()
			}
			for i := range q.buf.Len() {
				q.buf.At(i).msg.InProgress()
			}
		}
	}
	return d
}

// Redelivered counts the chunks JetStream delivered to this host more
// than once (after a node failure or a reader's departure).
func (s *PipeStore) Redelivered() uint64 { return s.dups }

// Close implements zpipes.Store. Chunks stay in their streams.
func (s *PipeStore) Close() (zpipes.Kept, error) {
	s.ticks.Stop()
	s.elections.close()
	for _, q := range s.queues {
		if q.reader != nil {
			q.endSpell()
		}
	}
	// Hand the chunks back now rather than after ackWait, so a reader
	// on another host goes on at once: the spells stop within fetchWait.
	deadline := time.After(2 * fetchWait)
	for len(s.leaving) > 0 {
		select {
		case n := <-s.notes:
			s.Handle(n)
		case <-deadline:
			s.log.Warn("pipes' readers did not stop in time; their chunks come back after the ack wait", "pipes", len(s.leaving), "ack_wait", ackWait)
			s.leaving = nil
		}
	}
	close(s.stop)
	s.wg.Wait()
	if s.dups > 0 {
		s.log.Info("chunks delivered more than once by JetStream", "count", s.dups)
	}
	return zpipes.Kept{Pipes: len(s.queues)}, nil
}

// pipeQueue is one pipe's state on this host. Fields below mu are shared
// with the publisher goroutine; the rest is the owner's.
type pipeQueue struct {
	s               *PipeStore
	name            string
	stream, subject string

	unpublished map[zpipes.WriterID]int
	// buf holds the chunks prefetched for the reader, in delivery order
	// (inBuf their stream sequences); taken those handed to the reader
	// and not yet consumed.
	buf   deque.Deque[bufItem]
	inBuf map[uint64]bool
	// expect is the stream sequence the reader gets next; early holds
	// chunks delivered ahead of it, since gapSince.
	expect   uint64
	early    map[uint64]jetstream.Msg
	gapSince time.Time
	// skipped holds the last maxSkipped ranges of sequences skipped as
	// missing: one that arrives after all is read, not taken for a
	// chunk acknowledged already.
	skipped [][2]uint64
	taken   map[uint64]jetstream.Msg
	reader  *reading // the current spell; nil without a reader here
	// lastSpell is closed when the last spell here has ended (nil if
	// none began).
	lastSpell <-chan struct{}

	pubMu     sync.Mutex
	pubQueue  []pubItem
	pubActive bool
	// mode: how the stream takes batches; ready: ensureStream found or
	// made the stream (a publish that finds it gone makes it again).
	mode  atomic.Int32
	ready atomic.Bool
}

// How a pipe's stream takes batches of chunks.
const (
	oneByOne      = iota // not at all: one chunk per publish
	atomicBatches        // all or nothing (Nats-Batch-* headers)
	fastBatches          // in order, up to the first refused (see fastbatch.go)
)

type bufItem struct {
	msg jetstream.Msg
	seq uint64
	// fetched: the chunk holds a place in its spell's read-ahead (it
	// was not given back by Return).
	fetched bool
}

type pubItem struct {
	ack   *appendAck
	chunk []byte
	id    string // its message ID, given when it is first published
	sent  bool   // it was in a publish attempt
}

// NewWriter implements zpipes.Queue.
func (q *pipeQueue) NewWriter() zpipes.WriterID {
	q.s.writers++
	return q.s.writers
}

// Append implements zpipes.Queue: the chunk goes to the pipe's publisher;
// its token comes back in Done.Stored once JetStream acknowledged it.
func (q *pipeQueue) Append(w zpipes.WriterID, chunk []byte, token any) bool {
	a := &appendAck{token: token, writer: w}
	fifo := q.s.acks[token]
	if fifo == nil {
		fifo = &deque.Deque[*appendAck]{}
		q.s.acks[token] = fifo
	}
	fifo.PushBack(a)
	q.unpublished[w]++
	q.pubMu.Lock()
	q.pubQueue = append(q.pubQueue, pubItem{ack: a, chunk: chunk})
	start := !q.pubActive
	q.pubActive = true
	q.pubMu.Unlock()
	if start {
		q.s.wg.Go(q.publisher)
	}
	return false
}

// publisher publishes the pipe's chunks and exits when there is nothing
// left: one publish in flight per pipe and host, carrying every chunk
// queued meanwhile (up to maxBatch chunks, batchBytes bytes) as one atomic
// batch (group commit), retried until JetStream takes it. Batches and the
// chunks in them go in queue order, so each writer's order is kept.
func (q *pipeQueue) publisher() {
	if !q.ready.Load() {
		if err := q.ensureStream(); err != nil {
			q.s.log.Error("pipe stream unavailable; its WRITEs stay unacknowledged", "pipe", q.name, "err", err)
		}
	}
	for {
		items := q.takeBatch()
		if items == nil {
			return
		}
		n, ok := q.publish(items)
		if !ok {
			return
		}
		if n > 1 {
			q.s.batched.Add(int64(n))
		}
		if n < len(items) {
			// The server takes smaller batches: the rest goes first in
			// the next one.
			q.pubMu.Lock()
			q.pubQueue = append(items[n:len(items):len(items)], q.pubQueue...)
			q.pubMu.Unlock()
		}
		acks, bytes := make([]*appendAck, n), 0
		for i, it := range items[:n] {
			acks[i], bytes = it.ack, bytes+len(it.chunk)
		}
		select {
		case q.s.notes <- published{q: q, acks: acks, bytes: bytes}:
		case <-q.s.stop:
			return
		}
	}
}

// takeBatch takes the chunks of the next publish from the queue, giving
// each its message ID; nil (and the publisher stops) if it is empty.
func (q *pipeQueue) takeBatch() []pubItem {
	limit := 1
	if q.mode.Load() != oneByOne {
		limit = int(q.s.maxBatch.Load())
	}
	maxBytes := min(batchBytes, q.s.pipeLimit.Load()/4)
	// A chunk counts in the stream's MaxBytes with its subject, headers
	// and record: small chunks take several times their size.
	overhead := int64(len(q.subject) + chunkOverhead)
	q.pubMu.Lock()
	defer q.pubMu.Unlock()
	if len(q.pubQueue) == 0 {
		q.pubActive = false
		return nil
	}
	n, bytes := 0, int64(0)
	for n < len(q.pubQueue) && n < limit && (n == 0 || bytes+int64(len(q.pubQueue[n].chunk))+overhead <= maxBytes) {
		bytes += int64(len(q.pubQueue[n].chunk)) + overhead
		n++
	}
	items := slices.Clone(q.pubQueue[:n])
	clear(q.pubQueue[:n])
	q.pubQueue = q.pubQueue[n:]
	for i := range items {
		if items[i].id == "" {
			// A message ID makes JetStream drop the copy a retry stores
			// when only the acknowledgement of the first attempt was
			// lost. Unique per store: a pipe released and opened again
			// within the duplicate window must not reuse one.
			items[i].id = q.s.newID("-")
		}
	}
	return items
}

// newID is a message or batch ID unique in the cluster: this store's
// lease holder, kind ("-" a chunk, "-b" an atomic batch, "-f" a fast
// batch) and the next number of pubSeq.
func (s *PipeStore) newID(kind string) string {
	return s.leases.holder + kind + strconv.FormatUint(s.pubSeq.Add(1), 36)
}

// Publishing limits. maxAtomicBatch is nats-server's default largest
// atomic batch (a server configured lower refuses ours, and the store
// halves its batches until one fits); batchBytes bounds a batch's bytes,
// and so does a quarter of the pipe limit: a full stream (DiscardNew)
// refuses a batch whole, so a batch must fit in a stream with others'
// chunks in it. A batch's bytes are those the stream counts: each chunk's
// data, subject and chunkOverhead (its headers, message ID and in an
// atomic batch the batch's ID, sequence and commit, under 200 bytes; the
// store's record, 30).
const (
	maxAtomicBatch = 1000
	batchBytes     = 1 << 20
	chunkOverhead  = 256
)

// JetStream's error codes for batches.
const (
	errAtomicDisabled  = 10174 // the stream does not allow atomic batches
	errBatchTooLarge   = 10199 // more messages than the server's batch limit
	errBatchDuplicate  = 10201 // a message ID of the batch is stored already
	errBatchTooMany    = 10210 // too many batches being staged
	errBatchIncomplete = 10176 // staged messages missing (a leader changed)
	errFastDisabled    = 10205 // the stream does not allow fast batches
	errFastUnknown     = 10208 // a fast batch's message after its end
	errFastTooMany     = 10211 // too many fast batches open
)

func apiCode(err error) jetstream.ErrorCode {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode
	}
	return 0
}

// publish retries until items, or a prefix of them, are stored, or the
// store stops; it returns how many were. A full stream (DiscardNew)
// refuses them until the reader frees room.
//
// A batch is all or nothing: a refused one (full, fenced, incomplete
// after a leader change) stored none of its chunks and is sent again. One
// whose answer was lost (timeout, leader change) is sent again identical,
// with the same message IDs, until it gets an answer: JetStream refuses
// the copy of a batch it stored with errBatchDuplicate (it checks the
// IDs before the stream's limits), which thus means the batch is stored.
// If the batch was cut in between (a smaller server limit, fallback to
// one at a time), or its chunks were in another publish's attempt (the
// rest of a cut batch), that does not say which of its chunks are stored:
// each is then published alone, where the ID answers per chunk.
func (q *pipeQueue) publish(items []pubItem) (int, bool) {
	// identical: every attempt that carried these chunks carried exactly
	// them (none of them was in another publish's attempt).
	identical := !slices.ContainsFunc(items, func(it pubItem) bool { return it.sent })
	var fullSince time.Time
	for attempt := 0; ; attempt++ {
		mode := q.mode.Load()
		switch {
		case len(items) > 1 && mode == oneByOne:
			items, identical = items[:1], false
		case mode == fastBatches:
			// It may store a part: an atomic attempt after it
			// would not be identical.
			identical = false
		}
		bytes := 0
		for i := range items {
			items[i].sent = true
			bytes += len(items[i].chunk)
		}
		ctx, cancel := context.WithTimeout(q.s.elections.context(q.stream), publishTimeout(bytes))
		n, err := q.send(ctx, mode, items)
		cancel()
		if err == nil || n > 0 {
			// All stored, or the first n (a fast batch stops at a
			// refused chunk): the rest goes in the next publish.
			return n, true
		}
		switch code := apiCode(err); {
		case code == errBatchDuplicate:
			if identical {
				return len(items), true
			}
			for i := range items {
				if n, ok := q.publish(items[i : i+1]); n == 0 || !ok {
					return i, ok
				}
			}
			return len(items), true
		case code == errBatchTooLarge && len(items) > 1:
			q.s.maxBatch.Store(int64(len(items) / 2))
			items, identical = items[:len(items)/2], false
			q.s.log.Warn("JetStream refused a batch as too large; batches halved", "pipe", q.name, "max_batch", len(items))
			continue
		case code == errAtomicDisabled || code == errFastDisabled:
			// The stream's flag was taken away: set it again, or fall
			// back to one chunk at a time.
			q.ensureStream()
		case errors.Is(err, context.Canceled):
			continue // the stream elected a leader: send it again there
		case isFull(err):
			if fullSince.IsZero() {
				q.s.log.Debug("pipe full in JetStream; WRITE held", "pipe", q.name)
				fullSince = time.Now()
			} else if time.Since(fullSince) > fenceStale {
				q.liftStaleFence()
				fullSince = time.Now()
			}
		case errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders):
			// The stream went away (deleted by an operator): make it again.
			q.ensureStream()
		case code == errBatchTooMany || code == errBatchIncomplete || code == errFastTooMany:
			// Nothing of it stored: sent again.
		default:
			if attempt%20 == 0 {
				q.s.log.Warn("publish to pipe stream failed; retrying", "pipe", q.name, "err", err)
			}
		}
		select {
		case <-q.s.stop:
			return 0, false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// send makes one attempt at publishing items and returns how many of
// them, from the first, are stored: one alone as a plain publish, more as
// a batch of the stream's mode. An atomic batch uses JetStream's headers
// (nats.go has no API for them): every message but the last is staged
// without a reply, the last commits and carries the batch's answer.
func (q *pipeQueue) send(ctx context.Context, mode int32, items []pubItem) (int, error) {
	if len(items) == 1 {
		msg := &nats.Msg{Subject: q.subject, Data: items[0].chunk, Header: nats.Header{jetstream.MsgIDHeader: {items[0].id}}}
		if _, err := q.s.js.PublishMsg(ctx, msg); err != nil {
			return 0, err
		}
		return 1, nil
	}
	if mode == fastBatches {
		return q.sendFast(ctx, items)
	}
	// A fresh batch ID per attempt: an attempt cut short leaves a staged
	// batch behind until the server's batch timeout.
	id := q.s.newID("-b")
	nc := q.s.js.Conn()
	for i, it := range items {
		msg := &nats.Msg{Subject: q.subject, Data: it.chunk, Header: nats.Header{
			jetstream.MsgIDHeader: {it.id},
			batchIDHeader:         {id},
			batchSeqHeader:        {strconv.Itoa(i + 1)},
		}}
		if i < len(items)-1 {
			if err := nc.PublishMsg(msg); err != nil {
				return 0, err
			}
			continue
		}
		msg.Header[batchCommitHeader] = []string{"1"}
		if _, err := q.s.js.PublishMsg(ctx, msg); err != nil {
			return 0, err
		}
	}
	return len(items), nil
}

// Headers of JetStream's atomic batch publishing.
const (
	batchIDHeader     = "Nats-Batch-Id"
	batchSeqHeader    = "Nats-Batch-Sequence"
	batchCommitHeader = "Nats-Batch-Commit"
)

// publishTimeout bounds one publish attempt. A publish sent to a stream
// leader that just died is never answered; the retry, to the new leader,
// comes this long after it: short, so a writer's stall after a failover
// is the election's (JetStream's Raft elects within 4 to 9 s of a
// SIGKILL, at once after a graceful stop) and not a long timeout. Large
// chunks get the time their transfer to the replicas takes. A retry of a
// chunk that was stored after all is dropped by its message ID.
func publishTimeout(size int) time.Duration {
	return time.Second + time.Duration(size)*time.Second/(4<<20)
}

func isFull(err error) bool {
	return errors.Is(err, jetstream.ErrMaxBytesExceeded) || strings.Contains(err.Error(), "maximum bytes")
}

func (q *pipeQueue) streamConfig() jetstream.StreamConfig {
	return PipeStreamConfig([]byte(q.name), q.s.pipeLimit.Load(), q.s.replicas)
}

// pipeMetadata is the stream metadata key naming the pipe (jsname-encoded).
const pipeMetadata = "zbroker-pipe"

// PipeStreamConfig is the stream of a pipe. No MaxMsgs: together with
// MaxBytes it would refuse chunks by count.
func PipeStreamConfig(pipe []byte, pipeLimit int64, replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        jsname.PipeStream(pipe),
		Description: "zbroker pipe",
		Subjects:    []string{jsname.PipeSubject(pipe)},
		Retention:   jetstream.WorkQueuePolicy,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    pipeLimit,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		Metadata:    map[string]string{pipeMetadata: jsname.Encode(pipe)},
		// Publishes are batches (see pipeQueue.publish).
		AllowAtomicPublish: true,
		AllowBatchPublish:  true,
	}
}

// PipeConsumerConfig is the durable consumer of a pipe's reader, whose
// acknowledging reader may hold maxUnacked chunks.
func PipeConsumerConfig(maxUnacked int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       readerConsumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: prefetch + maxUnacked,
		MaxDeliver:    -1,
	}
}

// context returns a context that ends after d or when the store stops.
func (s *PipeStore) context(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// SetPipeLimit makes n the MaxBytes of the pipes' streams: of those made
// from now on, and (in the background) of every existing one. Lowering
// it drops nothing (DiscardNew): a stream over the new limit refuses
// chunks until its reader brings it under.
func (s *PipeStore) SetPipeLimit(n int64) {
	s.pipeLimit.Store(s.streamBytes(n))
	s.wg.Go(s.updateLimits)
}

// streamBytes is the MaxBytes of a stream for pipe limit n: n, but at
// least room for one chunk of the largest size with its subject and
// headers. One host takes any chunk into a pipe below its limit; a
// stream refuses a chunk bigger than its MaxBytes for ever, so a WRITE
// of one would never be answered.
func (s *PipeStore) streamBytes(n int64) int64 {
	return max(n, s.maxChunk+ChunkRoom)
}

// ChunkRoom is what a chunk takes in a stream beyond its data, with
// margin: its subject (a pipe name encoded, at most about 600 bytes),
// headers and record.
const ChunkRoom = 4096

// updateLimits gives every pipe stream the current limit. One update runs
// at a time, each reading the limit afresh, so the last reload wins.
func (s *PipeStore) updateLimits() {
	s.limitMu.Lock()
	defer s.limitMu.Unlock()
	ctx, cancel := s.context(time.Minute)
	defer cancel()
	names := s.js.StreamNames(ctx, jetstream.WithStreamListSubject(jsname.PipeSubject(nil)+">"))
	updated, failed := 0, 0
	for name := range names.Name() {
		limit := s.pipeLimit.Load()
		err := natsnode.Retry(ctx, "updating a pipe's limit", s.log, func(ctx context.Context) error {
			st, err := s.js.Stream(ctx, name)
			if err != nil {
				return err
			}
			cfg := st.CachedInfo().Config
			// A fenced stream gets its limit back from its reclaimer.
			if cfg.MaxBytes == limit || cfg.MaxBytes == fenceBytes || cfg.Metadata[pipeMetadata] == "" {
				return nil
			}
			cfg.MaxBytes = limit
			if _, err = s.js.UpdateStream(ctx, cfg); err == nil {
				updated++
			}
			return err
		})
		if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			s.log.Warn("pipe stream keeps its old limit", "stream", name, "err", err)
			failed++
		}
	}
	if err := names.Err(); err != nil {
		s.log.Warn("listing the pipes' streams failed; some keep their old limit", "err", err)
	}
	s.log.Info("pipes' streams limit updated", "pipe_limit", s.pipeLimit.Load(), "updated", updated, "failed", failed)
}

// ensureStream creates the pipe's stream (not while a reclaimer may be
// deleting it), or checks the existing one is this pipe's (a different
// subject would be a hash collision) and allows atomic batches (it sets
// the flag on a stream an older zbroker made).
// A server that does not know atomic batches (before nats-server 2.12)
// ignores the flag: the pipe's chunks then go one at a time.
func (q *pipeQueue) ensureStream() error {
	ctx, cancel := q.s.context(time.Minute)
	defer cancel()
	return natsnode.Retry(ctx, "creating pipe stream", q.s.log, func(ctx context.Context) error {
		st, err := q.s.js.Stream(ctx, q.stream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			// Its reclaimer may be deleting it still (a longer wait
			// times the attempt out: Retry asks again).
			if err = q.s.leases.awaitReclaim(ctx, q.stream); err != nil {
				return err
			}
			st, err = q.s.js.CreateStream(ctx, q.streamConfig())
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				st, err = q.s.js.Stream(ctx, q.stream)
			}
		}
		if err != nil {
			return err
		}
		cfg := st.CachedInfo().Config
		if subj := cfg.Subjects; len(subj) != 1 || subj[0] != q.subject {
			return fmt.Errorf("stream %s holds %v, not pipe %q", q.stream, subj, q.name)
		}
		if !cfg.AllowAtomicPublish || !cfg.AllowBatchPublish {
			cfg.AllowAtomicPublish, cfg.AllowBatchPublish = true, true
			info, err := q.s.js.UpdateStream(ctx, cfg)
			if err != nil {
				q.s.log.Warn("pipe stream not updated to take batches", "pipe", q.name, "err", err)
			} else {
				cfg = info.CachedInfo().Config
			}
		}
		// One replica: the server would stage each atomic batch in a
		// file store of its own and fsync it before the commit (an
		// I/O round trip per batch, 20 to 100 ms on a busy disk); a
		// fast batch is stored as it comes.
		switch {
		case cfg.Replicas == 1 && cfg.AllowBatchPublish:
			q.mode.Store(fastBatches)
		case cfg.AllowAtomicPublish:
			q.mode.Store(atomicBatches)
		default:
			q.mode.Store(oneByOne)
			if !q.s.unbatched.Swap(true) {
				q.s.log.Warn("JetStream does not take atomic batches (nats-server before 2.12?): pipes' chunks are published one at a time, much slower", "pipe", q.name)
			}
		}
		q.ready.Store(true)
		return nil
	})
}

// Next implements zpipes.Queue: the first call starts reading for this
// host's reader.
func (q *pipeQueue) Next() (zpipes.Chunk, bool) {
	if q.reader == nil {
		q.startReading()
	}
	if q.buf.Len() == 0 {
		return zpipes.Chunk{}, false
	}
	it := q.buf.PopFront()
	delete(q.inBuf, it.seq)
	q.taken[it.seq] = it.msg
	if it.fetched {
		q.reader.ahead.Add(-int64(len(it.msg.Data())))
		q.reader.give(1)
	}
	return zpipes.Chunk{Data: it.msg.Data(), ID: it.seq}, true
}

// reading is one spell of this host serving the pipe's reader: it holds
// the pipe's reader lease and pulls from the consumer.
type reading struct {
	stop    chan struct{} // closed by the owner when the reader leaves
	release chan struct{} // closed by the owner once it let every chunk go
	done    chan struct{} // closed when the spell's goroutine ended
	// leaving holds (owner's) the chunks to hand back once the spell
	// has stopped: nacking them while its pull is still open would
	// deliver them to it again, out of order.
	leaving []bufItem
	// room holds a token per chunk the read-ahead may take more: the
	// fetcher takes them, the owner gives them back as chunks leave it
	// for the reader. ahead is the read-ahead's bytes.
	room  chan struct{}
	ahead atomic.Int64
}

// take takes up to n tokens of room, waiting up to wait for them: a
// fetch is for a batch, not for each chunk as it leaves. It returns how
// many it took.
func (r *reading) take(n int, wait time.Duration) int {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	got := 0
	for got < n {
		select {
		case <-r.room:
			got++
		case <-r.stop:
			return 0
		case <-timer.C:
			return got
		}
	}
	return got
}

// give gives n tokens back.
func (r *reading) give(n int) {
	for range n {
		select {
		case r.room <- struct{}{}:
		default:
		}
	}
}

func (q *pipeQueue) startReading() {
	prev := q.reader
	r := &reading{stop: make(chan struct{}), release: make(chan struct{}), done: make(chan struct{}), room: make(chan struct{}, prefetch)}
	r.give(prefetch)
	q.reader, q.lastSpell = r, r.done
	q.s.wg.Go(func() {
		defer close(r.done)
		if prev != nil {
			<-prev.done // the last spell gives the lease back first
		}
		q.read(r)
	})
}

// read runs a reading spell: lease, consumer, fetch loop; then it waits
// for the owner to let go of the chunks and gives the lease back.
func (q *pipeQueue) read(r *reading) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.stop:
		case <-q.s.stop:
		}
		cancel()
	}()
	rev, err := q.s.leases.acquire(ctx, q.stream)
	if err != nil {
		reason := "pipe already has a reader (on another host)"
		if !errors.Is(err, errLeaseHeld) {
			reason = "pipe cannot be read: " + err.Error()
			q.s.log.Error("reader lease", "pipe", q.name, "err", err)
		}
		q.note(refused{q, r, reason})
	} else {
		cons, err := q.consumer(ctx)
		var expect uint64
		if err == nil {
			expect, err = q.firstUnread(ctx, cons)
		}
		if err == nil {
			q.note(spellStart{q, r, expect})
			rev, err = q.fetchLoop(ctx, cons, r, rev)
		}
		if err != nil && ctx.Err() == nil {
			q.s.log.Error("reading pipe from JetStream stopped", "pipe", q.name, "err", err)
			q.note(refused{q, r, "pipe cannot be read: " + err.Error()})
		}
	}
	// Every chunk delivered to this host must be handed back (naks,
	// in order) before another host may read.
	q.note(stopped{q, r})
	select {
	case <-r.release:
	case <-q.s.stop:
	}
	if rev != 0 {
		q.s.leases.release(q.stream, rev)
	}
}

func (q *pipeQueue) note(n zpipes.Note) {
	select {
	case q.s.notes <- n:
	case <-q.s.stop:
	}
}

func (q *pipeQueue) consumer(ctx context.Context) (jetstream.Consumer, error) {
	if err := q.ensureStream(); err != nil {
		return nil, err
	}
	var cons jetstream.Consumer
	err := natsnode.Retry(ctx, "creating pipe consumer", q.s.log, func(ctx context.Context) error {
		var err error
		cons, err = q.s.js.CreateOrUpdateConsumer(ctx, q.stream, PipeConsumerConfig(q.s.maxUnacked))
		return err
	})
	return cons, err
}

// firstUnread is the stream sequence of the pipe's oldest unread chunk:
// acknowledged chunks are deleted (work queue), and the last reader gave
// back what it did not acknowledge before this spell began.
func (q *pipeQueue) firstUnread(ctx context.Context, cons jetstream.Consumer) (uint64, error) {
	var first uint64
	err := natsnode.Retry(ctx, "reading pipe state", q.s.log, func(ctx context.Context) error {
		st, err := q.s.js.Stream(ctx, q.stream)
		if err != nil {
			return err
		}
		ci, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		first = max(st.CachedInfo().State.FirstSeq, ci.AckFloor.Stream+1)
		return nil
	})
	return first, err
}

// fetchLoop pulls batches until the spell stops, renewing the lease.
// While pulls come back full (the stream has a backlog), two are open at a
// time: the next is sent before the chunks of the last are read, so the
// stream's consumer always has one to fill. Otherwise one: a pull on an
// idle stream waits fetchWait, and a stopping spell waits for its pulls.
// Each batch is read to its end, so no delivered chunk is left behind in
// the client library: all reach the owner, which holds or naks them.
// It returns the lease's last revision.
func (q *pipeQueue) fetchLoop(ctx context.Context, cons jetstream.Consumer, r *reading, rev uint64) (uint64, error) {
	var open jetstream.MessageBatch // the pull sent last, not read yet
	var openN int
	full := false // the last pull read came back full
	read := func() {
		if open == nil {
			return
		}
		got := 0
		for m := range open.Messages() {
			got++
			q.note(fetched{q: q, r: r, msg: m})
		}
		r.give(openN - got)
		open, full = nil, got == openN
	}
	defer read()
	renew := time.Now().Add(leaseRenew)
	for ctx.Err() == nil {
		if time.Now().After(renew) {
			next, err := q.s.leases.renew(ctx, q.stream, rev)
			if err != nil {
				return rev, fmt.Errorf("reader lease lost: %w", err)
			}
			rev = next
			renew = time.Now().Add(leaseRenew)
		}
		// Fetch only what the read-ahead has room for, in chunks and
		// in bytes (the pipe limit), so that a slow reader (or one
		// holding many chunks unacknowledged) holds the rest in the
		// stream; wait for room no longer than a fetch, to renew the
		// lease in time.
		if r.ahead.Load() >= q.s.pipeLimit.Load() {
			read()
			select {
			case <-ctx.Done():
			case <-time.After(fetchWait / 10):
			}
			continue
		}
		n := r.take(prefetch/4, fetchWait)
		if n == 0 {
			read()
			continue
		}
		batch, err := cons.Fetch(n, jetstream.FetchMaxWait(fetchWait))
		if err != nil {
			r.give(n)
			read()
			if ctx.Err() != nil {
				return rev, nil
			}
			q.s.log.Debug("fetch failed; retrying", "pipe", q.name, "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		read()
		open, openN = batch, n
		if !full {
			read()
		}
	}
	return rev, nil
}

// Consumed implements zpipes.Queue: the chunks are in the reader's
// socket, JetStream may delete them.
func (q *pipeQueue) Consumed(cs []zpipes.Chunk) {
	for _, c := range cs {
		if m := q.taken[c.ID]; m != nil {
			m.Ack()
			delete(q.taken, c.ID)
		}
	}
}

// Return implements zpipes.Queue: the chunks go back to the head of the
// read-ahead, in order (JetStream still counts them as delivered here).
func (q *pipeQueue) Return(cs []zpipes.Chunk) {
	for i := len(cs) - 1; i >= 0; i-- {
		if m := q.taken[cs[i].ID]; m != nil {
			delete(q.taken, cs[i].ID)
			q.inBuf[cs[i].ID] = true
			q.buf.PushFront(bufItem{m, cs[i].ID, false})
		}
	}
}

// ReaderLeft implements zpipes.ReaderTracker: the spell stops, and what
// this host holds for the reader goes back to JetStream once it has.
func (q *pipeQueue) ReaderLeft() {
	if q.reader == nil {
		return
	}
	if h := q.endSpell(); h.Chunks != 0 {
		q.s.wg.Go(func() { q.note(heldNote{h}) })
	}
}

type heldNote struct{ h zpipes.Held }

const maxSkipped = 16

func (q *pipeQueue) wasSkipped(seq uint64) bool {
	for _, r := range q.skipped {
		if seq >= r[0] && seq <= r[1] {
			return true
		}
	}
	return false
}

// drainEarly moves the chunks that are next in sequence to the read-ahead
// and returns the change in chunks held; the first holds room in the
// read-ahead if fetched.
func (q *pipeQueue) drainEarly(fetched bool) zpipes.Held {
	h := zpipes.Held{Pipe: q.name}
	for m := q.early[q.expect]; m != nil; m = q.early[q.expect] {
		delete(q.early, q.expect)
		q.inBuf[q.expect] = true
		q.buf.PushBack(bufItem{m, q.expect, fetched})
		fetched = false
		h.Chunks++
		h.Bytes += int64(len(m.Data()))
		q.expect++
	}
	if len(q.early) > 0 {
		q.gapSince = time.Now()
	}
	return h
}

// endSpell stops the current spell and moves the read-ahead to the
// chunks it hands back; it returns the change in chunks held here.
func (q *pipeQueue) endSpell() zpipes.Held {
	r := q.reader
	q.reader = nil
	close(r.stop)
	q.s.leaving[r] = true
	h := zpipes.Held{Pipe: q.name}
	for q.buf.Len() > 0 {
		it := q.buf.PopFront()
		delete(q.inBuf, it.seq)
		h.Chunks--
		h.Bytes -= int64(len(it.msg.Data()))
		r.leaving = append(r.leaving, it)
	}
	for seq, m := range q.early {
		r.leaving = append(r.leaving, bufItem{m, seq, false})
	}
	clear(q.early)
	return h
}

// Queued implements zpipes.Queue: this writer's chunks not yet published.
func (q *pipeQueue) Queued(w zpipes.WriterID) int { return q.unpublished[w] }

// Release implements zpipes.Queue. The stream is deleted if it holds no
// chunk and nobody reads the pipe anywhere (see reclaim), once this
// host's reading spell, if any, has ended. A reading spell still ending
// keeps the queue's notes coming: they are handled on the queue as it is.
func (q *pipeQueue) Release() {
	spell := q.lastSpell
	q.ReaderLeft()
	if q.s.queues[q.name] == q {
		delete(q.s.queues, q.name)
	}
	q.s.elections.forget(q.stream)
	q.s.wg.Go(func() { q.s.reclaim(q.name, q.stream, spell) })
}

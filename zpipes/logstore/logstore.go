// Package logstore is the durable zpipes.Store: queued chunks live in a
// write-ahead log (internal/wal) in a directory, so they survive a crash
// or restart of the broker, and memory holds only a bounded cache of them.
//
// # Records
//
// One log holds every pipe (one fsync covers all of them), with chunk
// records (writer, seq, pipe name, data) and mark records (writer, taken,
// consumed); their layout is specified in docs/durability.md. A writer is one connection's writing into one pipe, numbered uniquely
// within the directory; seq numbers its chunks from 1. A mark says that
// the writer's chunks up to "consumed" reached the reader's socket, and
// those up to "taken" were sent to it. One watermark per writer is the
// whole consumption state; the latest mark wins. Chunks of one writer are
// mostly consumed in their order; one consumed ahead of an earlier one
// (readers' spells overlap: one CLOSEd with a chunk still on its way)
// does not move the mark until the earlier one is consumed too, so a crash
// may deliver it again but never loses the earlier. At start, the chunks
// above their writer's consumed mark are queued again, each writer's in
// order, writers round robin; those at or below "taken" were out to a reader at the crash and
// are delivered again (at least once), which is logged. An acknowledging
// reader's chunks are consumed when it acknowledges them, so a crash
// queues every chunk it held unacknowledged again.
//
// # Space
//
// A segment is deleted once every chunk in it is consumed. Before that,
// marks it holds that are still needed (their writer has chunks in other
// segments) are written again into the current segment. When no chunk is
// left at all, every segment is deleted: a released pipe leaves nothing.
package logstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"time"

	"github.com/zbroker/zbroker/internal/deque"
	"github.com/zbroker/zbroker/internal/wal"
	"github.com/zbroker/zbroker/zmtp"
	"github.com/zbroker/zbroker/zpipes"
)

const (
	recChunk = 1
	recMark  = 2
)

// maxOut bounds the chunks of a pipe taken for its reader whose
// consumption is not yet written to the log: at most this many can be
// delivered again after a crash (unless the log could not be written at
// the time, see Handle). Chunks held by an acknowledging reader
// (AwaitAck) do not count until acknowledged: they are consumed only
// then, so a crash delivers every one of them again, as that reader
// asked; the server bounds them per reader (--max-unacked).
const maxOut = 128

// Options configure a Store.
type Options struct {
	Dir          string
	Sync         wal.SyncMode
	SyncInterval time.Duration // default 100ms
	// CacheLimit bounds the bytes of queued chunks kept in memory;
	// others are read back from the log when their turn comes. Default
	// 64 MiB.
	CacheLimit  int64
	SegmentSize int64 // default 64 MiB
	Logger      *slog.Logger
}

// Store is a zpipes.Store in a log. Its methods belong to the broker's
// owner goroutine, as zpipes.Store says.
type Store struct {
	opts Options
	log  *slog.Logger
	wal  *wal.Log

	queues    map[string]*queue
	writers   map[zpipes.WriterID]*writer
	lastID    zpipes.WriterID
	taken     map[uint64]*entry
	nextChunk uint64
	// segLive counts the unconsumed chunks of every segment that exists;
	// empty lists those with none, candidates for deletion.
	segLive map[uint64]int
	empty   map[uint64]struct{}
	live    int
	bytes   int64 // payload bytes of unconsumed chunks

	tokens deque.Deque[pendingToken]
	marks  deque.Deque[pendingMark]
	evict  deque.Deque[*entry]
	dirty  []*writer
	cache  int64
	stored []any

	recovered []zpipes.RecoveredPipe
	stats     Stats
	notes     chan zpipes.Note
	varints   [3 * binary.MaxVarintLen64]byte
}

// Stats are the store's counters.
type Stats struct {
	Recovered   int    // chunks queued again at start
	Redelivered int    // of those, how many had been sent to a reader
	Lost        int    // chunks lost to damage found at start or on reading
	ReadBack    uint64 // chunks read back from disk (not in the cache)
	Fsyncs      uint64
}

type pendingToken struct {
	end wal.Pos
	tok any
}

type pendingMark struct {
	end wal.Pos
	q   *queue
	n   int
}

type entry struct {
	w      *writer
	seq    uint64
	pos    wal.Pos
	size   int // the whole record's
	hdr    int // where the data starts in the payload
	end    wal.Pos
	data   []byte // nil once evicted from the cache
	cached bool   // data counts against the cache
	// fromTransport: Next handed out the chunk's own frame from the
	// transport, not a copy read back from the log.
	fromTransport bool
	// awaitingAck: taken by an acknowledging reader, not counted in its
	// queue's out until Consumed.
	awaitingAck bool
}

type writer struct {
	id     zpipes.WriterID
	q      *queue // nil once its pipe is released
	name   string
	chunks deque.Deque[*entry]
	seq    uint64 // last appended
	inRing bool
	// Marks: current values, and where the latest mark record is.
	taken, consumed uint64
	// ahead holds the chunks consumed above consumed+1, as sorted
	// disjoint ranges of seqs: the server may consume a later chunk
	// before an earlier one that is still out or was given back (two
	// readers' spells overlap), and the mark must not pass the earlier
	// one. Ranges, as what follows such a chunk is mostly consumed in
	// order. Empty while consumption is in order.
	ahead   [][2]uint64
	isDirty bool
	hasMark bool
	markSeg uint64
	// Segments holding its chunk records, first to last.
	hasChunks         bool
	firstSeg, lastSeg uint64
}

type queue struct {
	s        *Store
	name     string
	ring     []*writer
	next     int
	returned deque.Deque[*entry]
	out      int // taken, consumption not yet written
	blocked  bool
	released bool
}

// Open opens (creating) the store in opts.Dir, recovering what it holds.
func Open(opts Options) (*Store, error) {
	if opts.CacheLimit <= 0 {
		opts.CacheLimit = 64 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Store{
		opts:    opts,
		log:     opts.Logger.With("service", "zpipes", "data_dir", opts.Dir),
		queues:  map[string]*queue{},
		writers: map[zpipes.WriterID]*writer{},
		taken:   map[uint64]*entry{},
		segLive: map[uint64]int{},
		empty:   map[uint64]struct{}{},
		notes:   make(chan zpipes.Note, 1),
	}
	start := time.Now()
	var badRecords int
	w, rec, err := wal.Open(opts.Dir, wal.Options{
		Kind: "zpipes", Sync: opts.Sync, SyncInterval: opts.SyncInterval,
		SegmentSize: opts.SegmentSize, Logger: opts.Logger,
		Notify: func() {
			select {
			case s.notes <- nil:
			default:
			}
		},
	}, func(pos wal.Pos, typ byte, payload []byte) {
		if err := s.replay(pos, typ, payload); err != nil {
			badRecords++
			s.log.Error("undecodable record skipped", "pos", pos, "err", err)
		}
	})
	if err != nil {
		return nil, err
	}
	s.wal = w
	for _, seg := range rec.SegmentList {
		s.segLive[seg] += 0
	}
	s.rebuild(badRecords+len(rec.Damage) > 0)
	if rec.Records > 0 {
		s.log.Info("zpipes log recovered", "segments", rec.Segments, "records", rec.Records,
			"log_bytes", rec.Bytes, "pipes", len(s.recovered), "chunks", s.stats.Recovered,
			"bytes", s.bytes, "redelivered", s.stats.Redelivered, "lost", s.stats.Lost,
			"damaged", len(rec.Damage), "took", time.Since(start).Round(time.Millisecond))
	}
	if s.stats.Redelivered > 0 {
		s.log.Warn("chunks that were out to readers at the crash will be delivered again (at least once)",
			"chunks", s.stats.Redelivered)
	}
	s.reclaim(false)
	return s, nil
}

// replay applies one record read at start.
func (s *Store) replay(pos wal.Pos, typ byte, p []byte) error {
	var v [3]uint64
	n := 0
	for i := range v {
		x, k := binary.Uvarint(p[n:])
		if k <= 0 {
			return errors.New("bad varint")
		}
		v[i], n = x, n+k
	}
	id := zpipes.WriterID(v[0])
	s.lastID = max(s.lastID, id)
	w := s.writers[id]
	if w == nil {
		w = &writer{id: id}
		s.writers[id] = w
	}
	switch typ {
	case recChunk:
		if uint64(len(p)-n) < v[2] {
			return errors.New("name beyond the record")
		}
		name := string(p[n : n+int(v[2])])
		if w.name == "" {
			w.name = name
		}
		e := &entry{w: w, seq: v[1], pos: pos, size: wal.RecordHeader + len(p), hdr: n + int(v[2])}
		s.noteChunkSeg(w, pos.Seg())
		if e.seq <= w.seq {
			return fmt.Errorf("chunk %d of writer %d after chunk %d", e.seq, id, w.seq)
		}
		w.seq = e.seq
		w.chunks.PushBack(e)
	case recMark:
		w.taken, w.consumed = max(w.taken, v[1]), max(w.consumed, v[2])
		w.hasMark, w.markSeg = true, pos.Seg()
	default:
		return fmt.Errorf("unknown record type %d", typ)
	}
	return nil
}

func (s *Store) noteChunkSeg(w *writer, seg uint64) {
	if !w.hasChunks {
		w.hasChunks, w.firstSeg = true, seg
	}
	w.lastSeg = seg
}

// rebuild turns what replay read into queues: each writer's chunks above
// its consumed mark, writers in the order they were created.
func (s *Store) rebuild(damaged bool) {
	ids := make([]zpipes.WriterID, 0, len(s.writers))
	for id := range s.writers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	pipes := map[string]*zpipes.RecoveredPipe{}
	var order []string
	for _, id := range ids {
		w := s.writers[id]
		var keep deque.Deque[*entry]
		expect := w.consumed + 1
		for w.chunks.Len() > 0 {
			e := w.chunks.PopFront()
			if e.seq <= w.consumed {
				continue
			}
			if damaged && e.seq != expect {
				lost := int(e.seq - expect)
				s.stats.Lost += lost
				s.log.Error("chunks lost to damage in the log", "pipe", w.name, "writer", w.id, "chunks", lost, "after_seq", expect-1)
			}
			// Chunks missing between those kept (lost to damage, or
			// consumed out of order in segments since deleted) are
			// no longer anyone's: the mark may pass them.
			if e.seq > expect {
				w.consumedAhead(expect, e.seq-1)
			}
			expect = e.seq + 1
			if e.seq <= w.taken {
				s.stats.Redelivered++
			}
			keep.PushBack(e)
		}
		w.chunks = keep
		if w.chunks.Len() == 0 {
			if !w.hasChunks {
				delete(s.writers, id) // a mark whose chunks are all gone
			}
			continue
		}
		q := s.queueOf(w.name)
		w.q = q
		w.inRing = true
		q.ring = append(q.ring, w)
		rp := pipes[w.name]
		if rp == nil {
			rp = &zpipes.RecoveredPipe{Name: w.name}
			pipes[w.name] = rp
			order = append(order, w.name)
		}
		for i := 0; i < w.chunks.Len(); i++ {
			e := w.chunks.At(i)
			e.end = e.pos + wal.Pos(e.size)
			n := int64(e.size - wal.RecordHeader - e.hdr)
			rp.Chunks++
			rp.Bytes += n
			s.bytes += n
			s.live++
			s.segLive[e.pos.Seg()]++
		}
		s.stats.Recovered += w.chunks.Len()
	}
	for _, name := range order {
		s.recovered = append(s.recovered, *pipes[name])
	}
	for seg, n := range s.segLive {
		if n == 0 {
			s.empty[seg] = struct{}{}
		}
	}
}

func (s *Store) queueOf(name string) *queue {
	q := s.queues[name]
	if q == nil {
		q = &queue{s: s, name: name}
		s.queues[name] = q
	}
	return q
}

// Queue implements zpipes.Store.
func (s *Store) Queue(name string) zpipes.Queue { return s.queueOf(name) }

// Recovered implements zpipes.Store.
func (s *Store) Recovered() []zpipes.RecoveredPipe { return s.recovered }

// Notes implements zpipes.Store.
func (s *Store) Notes() <-chan zpipes.Note { return s.notes }

// Handle implements zpipes.Store: it completes what the log wrote.
func (s *Store) Handle(zpipes.Note) zpipes.Done {
	written, durable := s.wal.Written(), s.wal.Durable()
	s.stored = s.stored[:0]
	for s.tokens.Len() > 0 && s.tokens.At(0).end <= durable {
		s.stored = append(s.stored, s.tokens.PopFront().tok)
	}
	var ready []string
	for s.marks.Len() > 0 && s.marks.At(0).end <= written {
		m := s.marks.PopFront()
		m.q.out -= m.n
		if m.q.blocked && m.q.out < maxOut && !m.q.released {
			m.q.blocked = false
			ready = append(ready, m.q.name)
		}
	}
	if s.wal.Failing() {
		// Reads go on while the log cannot be written (the disk is
		// full): what they consume is recorded when it can be, and a
		// crash meanwhile may deliver more of it again.
		for _, q := range s.queues {
			if q.blocked {
				q.blocked = false
				ready = append(ready, q.name)
			}
		}
	}
	for s.evict.Len() > 0 && s.evict.At(0).end <= written {
		if e := s.evict.PopFront(); e.cached {
			e.cached = false
			e.data = nil
			s.cache -= int64(e.size)
		}
	}
	s.flushMarks()
	s.reclaim(false)
	return zpipes.Done{Stored: s.stored, Ready: ready}
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	st := s.stats
	st.Fsyncs = s.wal.Fsyncs()
	return st
}

// Close implements zpipes.Store: it writes and fsyncs everything.
func (s *Store) Close() (zpipes.Kept, error) {
	s.flushMarks()
	err := s.wal.Close()
	k := zpipes.Kept{Chunks: s.live, Bytes: s.bytes}
	for _, q := range s.queues {
		if q.len() > 0 {
			k.Pipes++
		}
	}
	return k, err
}

// NewWriter implements zpipes.Queue.
func (q *queue) NewWriter() zpipes.WriterID {
	s := q.s
	s.lastID++
	s.writers[s.lastID] = &writer{id: s.lastID, q: q, name: q.name}
	return s.lastID
}

// Append implements zpipes.Queue: the chunk is queued at once and stored
// when the log has written it (and fsynced it, in SyncAlways).
func (q *queue) Append(id zpipes.WriterID, chunk []byte, tok any) bool {
	s := q.s
	w := s.writers[id]
	if w == nil {
		// reclaim forgot the writer (idle, nothing of it on disk): its
		// chunks from now on are a new writer's on disk, so that marks
		// of its old records can never apply to them.
		s.lastID++
		w = &writer{id: s.lastID, q: q, name: q.name}
		s.writers[id] = w
	}
	w.seq++
	h := binary.AppendUvarint(s.varints[:0], uint64(id))
	h = binary.AppendUvarint(h, w.seq)
	h = binary.AppendUvarint(h, uint64(len(q.name)))
	hdr := len(h) + len(q.name)
	pos, end := s.wal.Append(recChunk, h, []byte(q.name), chunk)
	e := &entry{w: w, seq: w.seq, pos: pos, size: int(end - pos), hdr: hdr, end: end, data: chunk, cached: true}
	s.cache += int64(e.size)
	if s.cache > s.opts.CacheLimit {
		s.evict.PushBack(e)
	}
	s.noteChunkSeg(w, pos.Seg())
	if s.segLive[pos.Seg()] == 0 {
		delete(s.empty, pos.Seg())
	}
	s.segLive[pos.Seg()]++
	s.live++
	s.bytes += int64(len(chunk))
	w.chunks.PushBack(e)
	if !w.inRing {
		w.inRing = true
		q.ring = append(q.ring, w)
	}
	s.tokens.PushBack(pendingToken{end: end, tok: tok})
	return false
}

func (q *queue) len() int {
	n := q.returned.Len()
	for _, w := range q.ring {
		n += w.chunks.Len()
	}
	return n
}

// Next implements zpipes.Queue.
func (q *queue) Next() (zpipes.Chunk, bool) {
	s := q.s
	for {
		if q.out >= maxOut && !s.wal.Failing() {
			q.blocked = true
			return zpipes.Chunk{}, false
		}
		var e *entry
		if q.returned.Len() > 0 {
			e = q.returned.PopFront()
		} else if len(q.ring) > 0 {
			if q.next >= len(q.ring) {
				q.next = 0
			}
			w := q.ring[q.next]
			e = w.chunks.PopFront()
			if w.chunks.Len() == 0 {
				w.inRing = false
				last := len(q.ring) - 1
				copy(q.ring[q.next:], q.ring[q.next+1:])
				q.ring[last] = nil
				q.ring = q.ring[:last]
			} else {
				q.next++
			}
		} else {
			return zpipes.Chunk{}, false
		}
		data := e.data
		e.fromTransport = data != nil
		if e.cached {
			e.cached = false
			s.cache -= int64(e.size)
		}
		e.data = nil
		if data == nil {
			var err error
			if data, err = s.readBack(e); err != nil {
				// Never deliver wrong data: the chunk is lost, counted
				// consumed so its writer's later chunks go on.
				s.stats.Lost++
				s.log.Error("queued chunk unreadable; it is lost", "pipe", q.name, "writer", e.w.id, "seq", e.seq, "err", err)
				s.consume(e)
				s.flushMarks()
				continue
			}
		}
		s.nextChunk++
		s.taken[s.nextChunk] = e
		q.out++
		if e.seq > e.w.taken {
			e.w.taken = e.seq
			s.markDirty(e.w)
		}
		return zpipes.Chunk{Data: data, ID: s.nextChunk}, true
	}
}

func (s *Store) readBack(e *entry) ([]byte, error) {
	typ, p, err := s.wal.Read(e.pos, e.size)
	if err != nil {
		return nil, err
	}
	if typ != recChunk || len(p) < e.hdr {
		return nil, errors.New("not the chunk record expected")
	}
	s.stats.ReadBack++
	return p[e.hdr:], nil
}

// AwaitAck implements zpipes.AckWaiter.
func (q *queue) AwaitAck(c zpipes.Chunk) {
	q.s.taken[c.ID].awaitingAck = true
	q.out--
}

// Consumed implements zpipes.Queue.
func (q *queue) Consumed(cs []zpipes.Chunk) {
	s := q.s
	written := s.wal.Written()
	for _, c := range cs {
		e := s.taken[c.ID]
		delete(s.taken, c.ID)
		if e.awaitingAck {
			// Acknowledged: out until its consumption is written, like
			// every chunk consumed (see the mark pushed below).
			e.awaitingAck = false
			q.out++
		}
		s.consume(e)
		// Written in full to the reader's socket and, once the log has
		// written its record too, referenced nowhere: its memory goes back
		// to the transport for the next frame of its size, which spares
		// the collector a large buffer per chunk (issue 14's profiles). A
		// chunk consumed before the log wrote it is left to the collector,
		// and so is one read back from the log: draining a deep pipe would
		// fill the transport's pools with buffers no incoming frame takes
		// (a 2 GiB pipe read back peaked at 419 MiB instead of 170).
		if e.fromTransport && e.end <= written {
			zmtp.Recycle(c.Data)
		}
	}
	end := s.flushMarks()
	s.marks.PushBack(pendingMark{end: end, q: q, n: len(cs)})
	s.reclaim(false)
}

// consume counts a chunk consumed; its mark is written by flushMarks.
func (s *Store) consume(e *entry) {
	w := e.w
	if e.seq > w.consumed && w.consumedAhead(e.seq, e.seq) {
		w.taken = max(w.taken, w.consumed)
		s.markDirty(w)
	}
	seg := e.pos.Seg()
	s.segLive[seg]--
	if s.segLive[seg] == 0 {
		s.empty[seg] = struct{}{}
	}
	s.live--
	s.bytes -= int64(e.size - wal.RecordHeader - e.hdr)
}

// consumedAhead records the chunks lo..hi (above the mark) consumed and
// moves the mark over every chunk now consumed in a row; it reports
// whether the mark moved.
func (w *writer) consumedAhead(lo, hi uint64) bool {
	if lo == w.consumed+1 && (len(w.ahead) == 0 || w.ahead[0][0] > hi+1) {
		w.consumed = hi // in order: the usual case
		return true
	}
	i := sort.Search(len(w.ahead), func(i int) bool { return w.ahead[i][0] > lo })
	if i > 0 && w.ahead[i-1][1]+1 >= lo {
		i--
		w.ahead[i][1] = max(w.ahead[i][1], hi)
	} else {
		w.ahead = slices.Insert(w.ahead, i, [2]uint64{lo, hi})
	}
	for i+1 < len(w.ahead) && w.ahead[i][1]+1 >= w.ahead[i+1][0] {
		w.ahead[i][1] = max(w.ahead[i][1], w.ahead[i+1][1])
		w.ahead = slices.Delete(w.ahead, i+1, i+2)
	}
	if w.ahead[0][0] != w.consumed+1 {
		return false
	}
	w.consumed = w.ahead[0][1]
	w.ahead = slices.Delete(w.ahead, 0, 1)
	return true
}

func (s *Store) markDirty(w *writer) {
	if !w.isDirty {
		w.isDirty = true
		s.dirty = append(s.dirty, w)
	}
}

// flushMarks appends the marks of writers whose marks changed and returns
// the log's end.
func (s *Store) flushMarks() wal.Pos {
	for _, w := range s.dirty {
		w.isDirty = false
		s.writeMark(w)
	}
	clear(s.dirty)
	s.dirty = s.dirty[:0]
	return s.wal.End()
}

func (s *Store) writeMark(w *writer) {
	b := binary.AppendUvarint(s.varints[:0], uint64(w.id))
	b = binary.AppendUvarint(b, w.taken)
	b = binary.AppendUvarint(b, w.consumed)
	pos, _ := s.wal.Append(recMark, b)
	w.hasMark, w.markSeg = true, pos.Seg()
	if _, ok := s.segLive[pos.Seg()]; !ok {
		s.segLive[pos.Seg()] = 0
		s.empty[pos.Seg()] = struct{}{}
	}
}

// Return implements zpipes.Queue.
func (q *queue) Return(cs []zpipes.Chunk) {
	s := q.s
	for i := len(cs) - 1; i >= 0; i-- {
		e := s.taken[cs[i].ID]
		delete(s.taken, cs[i].ID)
		e.data = cs[i].Data
		q.returned.PushFront(e)
		if e.awaitingAck {
			e.awaitingAck = false
		} else {
			q.out--
		}
	}
}

// Queued implements zpipes.Queue.
func (q *queue) Queued(id zpipes.WriterID) int {
	if w := q.s.writers[id]; w != nil {
		return w.chunks.Len()
	}
	return 0
}

// Release implements zpipes.Queue. The pipe's chunks are all consumed;
// its records go when their segments do.
func (q *queue) Release() {
	s := q.s
	q.released = true
	if s.queues[q.name] == q {
		delete(s.queues, q.name)
	}
	for id, w := range s.writers {
		if w.q == q {
			w.q = nil
			if !w.hasChunks {
				delete(s.writers, id)
			}
		}
	}
	s.flushMarks()
	s.reclaim(true)
}

// allAtOnce is how much the current segment must hold before a store with
// no chunk left deletes it and starts a new one (a released pipe does so
// at once): a relay that keeps its pipes nearly empty would otherwise
// create and delete a file every few chunks.
const allAtOnce = 4 << 20

// reclaim deletes the segments no unconsumed chunk needs, or all of them
// when no chunk is left (released: a pipe was released).
func (s *Store) reclaim(released bool) {
	if len(s.empty) == 0 {
		return
	}
	if s.live == 0 && len(s.taken) == 0 && len(s.dirty) == 0 && (released || s.wal.End().Off() >= allAtOnce) {
		s.wal.Rotate()
		for seg := range s.segLive {
			s.wal.Delete(seg)
		}
		clear(s.segLive)
		clear(s.empty)
		clear(s.writers) // none has a chunk left; see Append
		return
	}
	active := s.wal.Segment()
	deleted := false
	for seg := range s.empty {
		if seg == active {
			continue
		}
		// Marks in seg that are still needed are written again first.
		for _, w := range s.writers {
			if w.hasMark && w.markSeg == seg && s.needsMark(w, seg) {
				s.writeMark(w)
			}
		}
		delete(s.empty, seg)
		delete(s.segLive, seg)
		s.wal.Delete(seg)
		deleted = true
	}
	if deleted {
		// Forget writers nothing refers to: no chunk queued, none of
		// their records left but in deleted segments. A writer still in
		// use gets a fresh on-disk identity if it appends again.
		for id, w := range s.writers {
			if w.chunks.Len() == 0 && !w.inRing && !s.needsMark(w, ^uint64(0)) {
				delete(s.writers, id)
			}
		}
	}
}

// needsMark reports whether a segment other than except holds chunk
// records of w, which its mark keeps from being queued again.
func (s *Store) needsMark(w *writer, except uint64) bool {
	if !w.hasChunks {
		return false
	}
	for seg := w.firstSeg; seg <= w.lastSeg; seg++ {
		if _, ok := s.segLive[seg]; ok && seg != except {
			return true
		}
	}
	return false
}

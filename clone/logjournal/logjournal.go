// Package logjournal is the durable clone.Journal: every change of the
// Clone map goes into a write-ahead log (internal/wal), compacted now and
// then into a snapshot of the live keys, so that a restarted server has
// the same map and carries on with the same sequence numbers.
//
// # Records
//
// Set (seq, key, uuid, properties, absolute expiry, body), delete (seq,
// key) and base (seq: a compaction starts) records, specified in
// docs/durability.md. Replaying every record in order gives the map; the sequence is the
// highest seen. A compaction writes a base record and the live entries
// into a new segment, and deletes the older segments once that is
// durable; if it is cut short, the older segments are still there and
// replaying them and then the partial snapshot gives the same map.
package logjournal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"time"

	"github.com/zbroker/zbroker/clone"
	"github.com/zbroker/zbroker/internal/deque"
	"github.com/zbroker/zbroker/internal/wal"
)

const (
	recSet  = 1
	recDel  = 2
	recBase = 3
)

// Options configure a Journal.
type Options struct {
	Dir          string
	Sync         wal.SyncMode
	SyncInterval time.Duration
	Logger       *slog.Logger
}

// Journal is a clone.Journal in a log. Its methods belong to the Clone
// server's owner goroutine.
type Journal struct {
	log      *slog.Logger
	wal      *wal.Log
	notes    chan clone.Note
	entries  map[string]clone.Entry // loaded; dropped after Load
	seq      uint64
	segs     map[uint64]struct{}
	pending  deque.Deque[pendingSeq]
	appended int // records since the last compaction
	base     int // live entries at the last compaction
	buf      []byte
}

type pendingSeq struct {
	end wal.Pos
	seq uint64
}

// Open opens (creating) the journal in opts.Dir and reads it.
func Open(opts Options) (*Journal, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	j := &Journal{
		log:     opts.Logger.With("service", "clone", "data_dir", opts.Dir),
		notes:   make(chan clone.Note, 1),
		entries: map[string]clone.Entry{},
		segs:    map[uint64]struct{}{},
	}
	start := time.Now()
	bad := 0
	w, rec, err := wal.Open(opts.Dir, wal.Options{
		Kind: "clone", Sync: opts.Sync, SyncInterval: opts.SyncInterval, Logger: opts.Logger,
		Notify: func() {
			select {
			case j.notes <- nil:
			default:
			}
		},
	}, func(pos wal.Pos, typ byte, p []byte) {
		if err := j.replay(typ, p); err != nil {
			bad++
			j.log.Error("undecodable record skipped", "pos", pos, "err", err)
		}
	})
	if err != nil {
		return nil, err
	}
	j.wal = w
	for _, s := range rec.SegmentList {
		j.segs[s] = struct{}{}
	}
	j.appended = rec.Records
	if rec.Records > 0 {
		j.log.Info("clone log recovered", "segments", rec.Segments, "records", rec.Records,
			"keys", len(j.entries), "seq", j.seq, "damaged", len(rec.Damage)+bad,
			"took", time.Since(start).Round(time.Millisecond))
	}
	return j, nil
}

func uvarint(p []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(p)
	if n <= 0 {
		return 0, nil, errors.New("bad varint")
	}
	return v, p[n:], nil
}

func bytesField(p []byte) ([]byte, []byte, error) {
	n, p, err := uvarint(p)
	if err != nil || uint64(len(p)) < n {
		return nil, nil, errors.New("field beyond the record")
	}
	return p[:n], p[n:], nil
}

func (j *Journal) replay(typ byte, p []byte) error {
	seq, p, err := uvarint(p)
	if err != nil {
		return err
	}
	j.seq = max(j.seq, seq)
	switch typ {
	case recBase:
		return nil
	case recDel:
		delete(j.entries, string(p))
		return nil
	case recSet:
	default:
		return fmt.Errorf("unknown record type %d", typ)
	}
	var key, uuid, props []byte
	if key, p, err = bytesField(p); err != nil {
		return err
	}
	if uuid, p, err = bytesField(p); err != nil {
		return err
	}
	if props, p, err = bytesField(p); err != nil {
		return err
	}
	exp, n := binary.Varint(p)
	if n <= 0 {
		return errors.New("bad expiry")
	}
	e := clone.Entry{Key: string(key), Seq: seq, UUID: bytes.Clone(uuid), Body: bytes.Clone(p[n:])}
	if e.Props, err = clone.DecodeProps(props); err != nil {
		return err
	}
	if exp != 0 {
		e.Expires = time.Unix(0, exp)
	}
	j.entries[e.Key] = e
	return nil
}

// Load implements clone.Journal.
func (j *Journal) Load() ([]clone.Entry, uint64, error) {
	out := make([]clone.Entry, 0, len(j.entries))
	for _, e := range j.entries {
		out = append(out, e)
	}
	j.base = len(out)
	j.entries = nil
	return out, j.seq, nil
}

func (j *Journal) append(typ byte, parts ...[]byte) wal.Pos {
	pos, end := j.wal.Append(typ, parts...)
	j.segs[pos.Seg()] = struct{}{}
	j.appended++
	return end
}

func (j *Journal) encodeSet(u clone.Entry) []byte {
	b := binary.AppendUvarint(j.buf[:0], u.Seq)
	b = binary.AppendUvarint(b, uint64(len(u.Key)))
	b = append(b, u.Key...)
	b = binary.AppendUvarint(b, uint64(len(u.UUID)))
	b = append(b, u.UUID...)
	props, _ := clone.EncodeProps(u.Props) // the server accepted them: valid
	b = binary.AppendUvarint(b, uint64(len(props)))
	b = append(b, props...)
	var exp int64
	if !u.Expires.IsZero() {
		exp = u.Expires.UnixNano()
	}
	b = binary.AppendVarint(b, exp)
	j.buf = b
	return b
}

// Record implements clone.Journal: stored once the log has it written
// (fsynced, for SyncAlways).
func (j *Journal) Record(u clone.Entry) bool {
	var end wal.Pos
	if len(u.Body) == 0 {
		end = j.append(recDel, binary.AppendUvarint(j.buf[:0], u.Seq), []byte(u.Key))
	} else {
		end = j.append(recSet, j.encodeSet(u), u.Body)
	}
	j.seq = u.Seq
	j.pending.PushBack(pendingSeq{end, u.Seq})
	return false
}

// Notes implements clone.Journal.
func (j *Journal) Notes() <-chan clone.Note { return j.notes }

// Handle implements clone.Journal.
func (j *Journal) Handle(clone.Note) uint64 {
	durable := j.wal.Durable()
	var through uint64
	for j.pending.Len() > 0 && j.pending.At(0).end <= durable {
		through = j.pending.PopFront().seq
	}
	return through
}

// CompactWanted implements clone.Journal: the log holds more than twice
// the records of the last snapshot, and at least 10000.
func (j *Journal) CompactWanted() bool {
	return j.appended > max(10000, 2*j.base)
}

// Compact implements clone.Journal.
func (j *Journal) Compact(live iter.Seq[clone.Entry], seq uint64) error {
	j.wal.Rotate()
	first := j.wal.Segment()
	j.appended = 0
	j.append(recBase, binary.AppendUvarint(j.buf[:0], seq))
	n := 0
	for e := range live {
		j.append(recSet, j.encodeSet(e), e.Body)
		n++
	}
	j.base = n
	for s := range j.segs {
		if s < first {
			j.wal.Delete(s)
			delete(j.segs, s)
		}
	}
	return nil
}

// Close implements clone.Journal.
func (j *Journal) Close() error { return j.wal.Close() }

package wal

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// SyncMode says when the log fsyncs.
type SyncMode int

const (
	// SyncInterval fsyncs every Options.SyncInterval: a power loss takes
	// at most that much of what was acknowledged.
	SyncInterval SyncMode = iota
	// SyncAlways fsyncs before a record counts as durable, batching all
	// records written meanwhile into one fsync (group commit).
	SyncAlways
	// SyncNever leaves flushing to the kernel.
	SyncNever
)

// ParseSyncMode parses "always", "interval" or "never".
func ParseSyncMode(s string) (SyncMode, error) {
	switch s {
	case "always":
		return SyncAlways, nil
	case "interval":
		return SyncInterval, nil
	case "never":
		return SyncNever, nil
	}
	return 0, fmt.Errorf("fsync mode %q: want always, interval or never", s)
}

func (m SyncMode) String() string {
	return [...]string{"interval", "always", "never"}[m]
}

// Options configure a Log.
type Options struct {
	// Kind names the owner; it is written in every segment header and
	// checked when reading.
	Kind         string
	Sync         SyncMode
	SyncInterval time.Duration // default 100ms
	SegmentSize  int64         // a segment is closed past it; default 64 MiB
	// Notify, if set, is called (from the log's goroutines, never
	// blocking) whenever Written or Synced may have advanced, instead of
	// sending on Notes.
	Notify func()
	Logger *slog.Logger
}

// Log is an open log. Append, Rotate, Delete, Read and Durable belong to
// one owner goroutine; a writer goroutine writes what is appended, and a
// syncer goroutine fsyncs it. Their progress is announced on Notes.
type Log struct {
	dir  string
	opts Options
	log  *slog.Logger

	// Owner state.
	seg        uint64 // segment appended to
	off        int64  // where the next record goes in it
	needHeader bool   // seg has no header yet (nothing appended to it)
	end        Pos    // end of the last record appended
	readers    map[uint64]*os.File

	// Shared with the writer.
	mu      sync.Mutex
	ops     []op
	free    [][]byte
	closing bool
	wake    chan struct{}

	written atomic.Uint64 // end Pos of what is written
	synced  atomic.Uint64 // end Pos of what is fsynced
	notes   chan struct{}
	fsyncs  atomic.Uint64
	failing atomic.Bool // writes fail (disk full): see Failing

	// Shared by writer and syncer.
	smu      sync.Mutex
	syncFile *os.File
	syncTo   Pos
	syncWake chan struct{}

	lock       *os.File
	writerDone chan struct{}
	syncerDone chan struct{}
	stopSyncer chan struct{}
}

// op is a run of bytes for one segment at an offset, or the deletion of
// a segment once everything before it is durable.
type op struct {
	seg uint64
	off int64
	buf []byte
	del bool
	ref bool // buf is a caller's payload, not ours to reuse
}

// noCopy is the size from which a record's last part is not copied.
const noCopy = 32 << 10

// Recovered describes what Open read.
type Recovered struct {
	Segments int
	Records  int
	Bytes    int64
	// Damage lists what was skipped or cut, one line each, also logged.
	Damage []string
	// SegmentList holds the numbers of the segments kept, in order.
	SegmentList []uint64
}

// ErrLocked is returned by Open when another process uses the directory.
var ErrLocked = errors.New("data directory in use by another process")

// Open locks dir (creating it), reads every record into fn, repairs torn
// tails, and starts the writer on a new segment. fn's payload is only
// valid during the call.
func Open(dir string, opts Options, fn func(pos Pos, typ byte, payload []byte)) (*Log, Recovered, error) {
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = 100 * time.Millisecond
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = 64 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	var rec Recovered
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, rec, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, rec, err
	}
	l := &Log{
		dir:        dir,
		opts:       opts,
		log:        opts.Logger.With("log", dir),
		readers:    map[uint64]*os.File{},
		wake:       make(chan struct{}, 1),
		notes:      make(chan struct{}, 1),
		syncWake:   make(chan struct{}, 1),
		lock:       lock,
		writerDone: make(chan struct{}),
		syncerDone: make(chan struct{}),
		stopSyncer: make(chan struct{}),
	}
	segs, err := l.segments()
	if err == nil {
		var buf []byte // one buffer for every segment read
		for _, seg := range segs {
			if buf, err = l.scan(seg, buf, fn, &rec); err != nil {
				break
			}
		}
	}
	if err != nil {
		lock.Close()
		return nil, rec, err
	}
	if len(segs) > 0 {
		l.seg = segs[len(segs)-1] + 1
	}
	l.needHeader = true
	l.end = MakePos(l.seg, 0)
	l.written.Store(uint64(l.end))
	l.synced.Store(uint64(l.end))
	go l.writer()
	go l.syncer()
	return l, rec, nil
}

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := io.ReadAll(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w (pid %s)", dir, ErrLocked, strings.TrimSpace(string(b)))
		}
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// segments lists the segment numbers in the directory, in order; any
// other file but LOCK is an error.
func (l *Log) segments() ([]uint64, error) {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, err
	}
	var segs []uint64
	for _, e := range ents {
		name := e.Name()
		if name == "LOCK" {
			continue
		}
		hex, ok := strings.CutSuffix(name, ".wal")
		seg, err := strconv.ParseUint(hex, 16, 64)
		if !ok || err != nil || len(hex) != 16 {
			return nil, fmt.Errorf("%s: unexpected file %q in the log directory", l.dir, name)
		}
		segs = append(segs, seg)
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i] < segs[j] })
	return segs, nil
}

// scan reads one segment, passing its records to fn; it truncates a torn
// tail and reports damage in the middle.
func (l *Log) scan(seg uint64, buf []byte, fn func(Pos, byte, []byte), rec *Recovered) ([]byte, error) {
	path := filepath.Join(l.dir, segName(seg))
	b, err := readFile(path, buf)
	if err != nil {
		return buf, err
	}
	return b, l.scanBytes(path, seg, b, fn, rec)
}

// readFile reads a whole file into buf, growing it as needed.
func readFile(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if int64(cap(buf)) < fi.Size() {
		buf = make([]byte, fi.Size())
	}
	buf = buf[:fi.Size()]
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return buf, nil
}

func (l *Log) scanBytes(path string, seg uint64, b []byte, fn func(Pos, byte, []byte), rec *Recovered) error {
	if len(b) < HeaderSize {
		// Created, but its header never fully written: nothing in it.
		l.damage(rec, "torn segment header: removed", "file", path, "bytes", len(b))
		return os.Remove(path)
	}
	if err := checkHeader(b, l.opts.Kind, seg); err != nil {
		return fmt.Errorf("%s: %w; refusing to start without its data (move it away to start without it)", path, err)
	}
	rec.Segments++
	rec.SegmentList = append(rec.SegmentList, seg)
	off := HeaderSize
	for off < len(b) {
		typ, payload, size, err := DecodeRecord(b[off:], MakePos(seg, int64(off)))
		if err == nil {
			fn(MakePos(seg, int64(off)), typ, payload)
			rec.Records++
			rec.Bytes += int64(size)
			off += size
			continue
		}
		next := resync(b, seg, off+1)
		if next < 0 {
			l.damage(rec, "torn tail: truncating the segment (a write cut short by a crash)",
				"file", path, "offset", off, "bytes", len(b)-off, "err", err)
			return os.Truncate(path, int64(off))
		}
		l.damage(rec, "damaged record skipped: its data is lost, the rest is recovered",
			"file", path, "offset", off, "bytes_skipped", next-off, "err", err)
		off = next
	}
	return nil
}

// resync finds the next valid record at or after from, or -1.
func resync(b []byte, seg uint64, from int) int {
	for off := from; off+RecordHeader <= len(b); off++ {
		if _, _, _, err := DecodeRecord(b[off:], MakePos(seg, int64(off))); err == nil {
			return off
		}
	}
	return -1
}

func (l *Log) damage(rec *Recovered, msg string, args ...any) {
	l.log.Warn(msg, args...)
	var sb strings.Builder
	sb.WriteString(msg)
	for i := 0; i+1 < len(args); i += 2 {
		fmt.Fprintf(&sb, " %v=%v", args[i], args[i+1])
	}
	rec.Damage = append(rec.Damage, sb.String())
}

// Append appends a record whose payload is the concatenation of parts and
// returns where it starts and ends. It never blocks on the writer.
func (l *Log) Append(typ byte, parts ...[]byte) (pos, end Pos) {
	n := int64(RecordHeader)
	for _, p := range parts {
		n += int64(len(p))
	}
	if !l.needHeader && l.off+n > l.opts.SegmentSize {
		l.Rotate()
	}
	l.mu.Lock()
	if l.needHeader {
		l.needHeader = false
		b := l.buffer(l.seg, 0)
		*b = appendHeader(*b, l.opts.Kind, l.seg)
		l.off = HeaderSize
	}
	pos = MakePos(l.seg, l.off)
	b := l.buffer(l.seg, l.off)
	if big := parts[len(parts)-1]; len(big) >= noCopy {
		// A large last part (a big chunk) is written from the caller's
		// slice instead of being copied: the payload is immutable.
		*b = appendRecordHeader(*b, typ, pos, parts...)
		for _, p := range parts[:len(parts)-1] {
			*b = append(*b, p...)
		}
		l.ops = append(l.ops, op{seg: l.seg, off: l.off + n - int64(len(big)), buf: big, ref: true})
	} else {
		*b = AppendRecord(*b, typ, pos, parts...)
	}
	l.off += n
	l.end = MakePos(l.seg, l.off)
	l.mu.Unlock()
	l.signal()
	return pos, l.end
}

// buffer returns the op to append bytes at off of seg to; l.mu held.
func (l *Log) buffer(seg uint64, off int64) *[]byte {
	if k := len(l.ops) - 1; k >= 0 && !l.ops[k].del && !l.ops[k].ref && l.ops[k].seg == seg && l.ops[k].off+int64(len(l.ops[k].buf)) == off {
		return &l.ops[k].buf
	}
	var buf []byte
	if k := len(l.free) - 1; k >= 0 {
		buf, l.free = l.free[k][:0], l.free[:k]
	}
	l.ops = append(l.ops, op{seg: seg, off: off, buf: buf})
	return &l.ops[len(l.ops)-1].buf
}

func (l *Log) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Rotate makes the next record start a new segment.
func (l *Log) Rotate() {
	if l.needHeader {
		return
	}
	l.seg++
	l.off = 0
	l.needHeader = true
}

// Segment is the segment the next record goes to.
func (l *Log) Segment() uint64 { return l.seg }

// Delete removes a segment (not the one appended to) once everything
// appended before the call is durable.
func (l *Log) Delete(seg uint64) {
	if f := l.readers[seg]; f != nil {
		f.Close()
		delete(l.readers, seg)
	}
	l.mu.Lock()
	l.ops = append(l.ops, op{seg: seg, del: true})
	l.mu.Unlock()
	l.signal()
}

// Read reads the record of size bytes written at pos and returns its type
// and payload, checking it as at start.
func (l *Log) Read(pos Pos, size int) (byte, []byte, error) {
	f := l.readers[pos.Seg()]
	if f == nil {
		var err error
		if f, err = os.Open(filepath.Join(l.dir, segName(pos.Seg()))); err != nil {
			return 0, nil, err
		}
		l.readers[pos.Seg()] = f
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, pos.Off()); err != nil {
		return 0, nil, fmt.Errorf("reading %s: %w", pos, err)
	}
	typ, payload, _, err := DecodeRecord(b, pos)
	if err != nil {
		return 0, nil, fmt.Errorf("record at %s: %w", pos, err)
	}
	return typ, payload, nil
}

// Notes receives a value whenever Written or Synced may have advanced
// (unless Options.Notify is set).
func (l *Log) Notes() <-chan struct{} { return l.notes }

func (l *Log) notify() {
	if l.opts.Notify != nil {
		l.opts.Notify()
		return
	}
	notify(l.notes)
}

// End is the end of the last record appended.
func (l *Log) End() Pos { return l.end }

// Written is the end of what is written to the files (safe from a crash
// of this process).
func (l *Log) Written() Pos { return Pos(l.written.Load()) }

// Durable is the end of what is durable in the sense of the sync mode:
// fsynced for SyncAlways, written otherwise.
func (l *Log) Durable() Pos {
	if l.opts.Sync == SyncAlways {
		return Pos(l.synced.Load())
	}
	return l.Written()
}

// Failing reports whether writes currently fail (the disk is full, say);
// the writer retries until they succeed.
func (l *Log) Failing() bool { return l.failing.Load() }

// Fsyncs counts the fsyncs done.
func (l *Log) Fsyncs() uint64 { return l.fsyncs.Load() }

// Close writes and fsyncs what is appended, stops the goroutines and
// unlocks the directory. Appended records that cannot be written (the
// disk is full) are dropped after one more try, and the error returned.
func (l *Log) Close() error {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	l.signal()
	<-l.writerDone
	close(l.stopSyncer)
	<-l.syncerDone
	for _, f := range l.readers {
		f.Close()
	}
	var err error
	if l.Written() < l.end {
		err = fmt.Errorf("%d bytes of records could not be written", uint64(l.end)-uint64(l.Written()))
	}
	l.lock.Close()
	return err
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func storeMax(a *atomic.Uint64, v Pos) {
	for {
		old := a.Load()
		if uint64(v) <= old || a.CompareAndSwap(old, uint64(v)) {
			return
		}
	}
}

// writer writes the appended runs in order, retrying after errors.
func (l *Log) writer() {
	defer close(l.writerDone)
	var (
		f       *os.File
		fseg    uint64
		backlog []op
		failing time.Time // when the current episode of errors began
		retry   = time.NewTimer(time.Hour)
	)
	retry.Stop()
	closeFile := func() {
		if f == nil {
			return
		}
		if l.opts.Sync != SyncNever && l.sync(f) == nil {
			storeMax(&l.synced, l.Written())
			l.notify()
		}
		l.smu.Lock()
		if l.syncFile == f {
			l.syncFile = nil
		}
		l.smu.Unlock()
		f.Close()
		f = nil
	}
	defer closeFile()
	for {
		if failing.IsZero() {
			<-l.wake
		} else {
			// While failing, retry on the timer; only Close cuts in.
			select {
			case <-retry.C:
			case <-l.wake:
				l.mu.Lock()
				closing := l.closing
				l.mu.Unlock()
				if !closing {
					continue
				}
			}
		}
		l.mu.Lock()
		backlog = append(backlog, l.ops...)
		clear(l.ops)
		l.ops = l.ops[:0]
		closing := l.closing
		l.mu.Unlock()
		var err error
		for len(backlog) > 0 {
			o := &backlog[0]
			if o.del {
				if f != nil && fseg == o.seg {
					closeFile()
				} else if f != nil && l.opts.Sync != SyncNever {
					// What comes before the deletion (marks that make
					// the segment's records unneeded) must be durable
					// first.
					if err = l.sync(f); err != nil {
						break
					}
					storeMax(&l.synced, l.Written())
				}
				if err = os.Remove(filepath.Join(l.dir, segName(o.seg))); err != nil && !os.IsNotExist(err) {
					break
				}
				err = nil
				backlog = backlog[1:]
				continue
			}
			if f == nil || fseg != o.seg {
				closeFile()
				if f, err = os.OpenFile(filepath.Join(l.dir, segName(o.seg)), os.O_WRONLY|os.O_CREATE, 0o600); err != nil {
					f = nil
					break
				}
				fseg = o.seg
				if l.opts.Sync != SyncNever {
					if err = l.syncDir(); err != nil {
						break
					}
				}
			}
			n, werr := f.WriteAt(o.buf, o.off)
			o.off += int64(n)
			o.buf = o.buf[n:]
			if werr != nil {
				err = werr
				break
			}
			storeMax(&l.written, MakePos(o.seg, o.off))
			l.smu.Lock()
			l.syncFile, l.syncTo = f, MakePos(o.seg, o.off)
			l.smu.Unlock()
			if !o.ref {
				l.recycle(o.buf[:0:cap(o.buf)])
			}
			backlog = backlog[1:]
		}
		l.failing.Store(err != nil)
		if len(backlog) == 0 {
			backlog = nil
		}
		l.notify()
		if l.opts.Sync == SyncAlways {
			notify(l.syncWake)
		}
		if err != nil {
			if failing.IsZero() {
				failing = time.Now()
				l.log.Error("log write failed: unwritten records are held (their WRITEs get no OK) and retried", "err", err)
			}
			if closing {
				return
			}
			retry.Reset(200 * time.Millisecond)
			continue
		}
		if !failing.IsZero() {
			l.log.Info("log writes succeed again", "after", time.Since(failing).Round(time.Millisecond))
			failing = time.Time{}
		}
		if closing {
			l.mu.Lock()
			more := len(l.ops) > 0
			l.mu.Unlock()
			if !more {
				return
			}
			l.signal()
		}
	}
}

// recycle keeps a written buffer for reuse, unless it is large.
func (l *Log) recycle(b []byte) {
	if cap(b) > 4<<20 {
		return
	}
	l.mu.Lock()
	if len(l.free) < 8 {
		l.free = append(l.free, b)
	}
	l.mu.Unlock()
}

func (l *Log) sync(f *os.File) error {
	err := f.Sync()
	if err == nil {
		l.fsyncs.Add(1)
	}
	return err
}

func (l *Log) syncDir() error {
	d, err := os.Open(l.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// syncer fsyncs what the writer wrote: at once (coalescing) for
// SyncAlways, every interval for SyncInterval.
func (l *Log) syncer() {
	defer close(l.syncerDone)
	if l.opts.Sync == SyncNever {
		<-l.stopSyncer
		return
	}
	var tick <-chan time.Time
	if l.opts.Sync == SyncInterval {
		t := time.NewTicker(l.opts.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	var failing bool
	for {
		select {
		case <-l.syncWake:
		case <-tick:
		case <-l.stopSyncer:
			return
		}
		l.smu.Lock()
		f, to := l.syncFile, l.syncTo
		l.smu.Unlock()
		if f == nil || uint64(to) <= l.synced.Load() {
			continue
		}
		if err := l.sync(f); err != nil {
			if errors.Is(err, os.ErrClosed) {
				continue // the writer closed it, after its own fsync
			}
			if !failing {
				l.log.Error("log fsync failed; retrying", "err", err)
				failing = true
			}
			time.Sleep(200 * time.Millisecond)
			notify(l.syncWake)
			continue
		}
		failing = false
		storeMax(&l.synced, to)
		l.notify()
	}
}

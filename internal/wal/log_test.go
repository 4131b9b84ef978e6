package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type rec struct {
	pos  Pos
	typ  byte
	data string
}

func open(t *testing.T, dir string, opts Options) (*Log, []rec, Recovered) {
	t.Helper()
	opts.Kind = "test"
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	var got []rec
	l, r, err := Open(dir, opts, func(pos Pos, typ byte, p []byte) { got = append(got, rec{pos, typ, string(p)}) })
	if err != nil {
		t.Fatal(err)
	}
	return l, got, r
}

// waitDurable waits until everything appended is durable.
func waitDurable(t *testing.T, l *Log) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for l.Durable() < l.end {
		select {
		case <-l.Notes():
		case <-deadline:
			t.Fatalf("durable %v, appended %v", l.Durable(), l.end)
		}
	}
}

func TestAppendReopenRead(t *testing.T) {
	for _, mode := range []SyncMode{SyncAlways, SyncInterval, SyncNever} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			l, _, _ := open(t, dir, Options{Sync: mode, SegmentSize: 4096, SyncInterval: time.Millisecond})
			var want []rec
			for i := range 500 {
				data := strings.Repeat(fmt.Sprint(i), i%50)
				pos, _ := l.Append(byte(1+i%3), []byte("x"), []byte(data))
				want = append(want, rec{pos, byte(1 + i%3), "x" + data})
			}
			waitDurable(t, l)
			if mode != SyncNever && l.Fsyncs() == 0 {
				t.Fatal("no fsync")
			}
			for _, w := range want[:20] {
				typ, p, err := l.Read(w.pos, RecordHeader+len(w.data))
				if err != nil || typ != w.typ || string(p) != w.data {
					t.Fatalf("Read(%v) = %d %q %v, want %q", w.pos, typ, p, err, w.data)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l2, got, r := open(t, dir, Options{})
			defer l2.Close()
			if len(got) != len(want) || r.Segments < 2 || len(r.Damage) > 0 {
				t.Fatalf("recovered %d records in %d segments, damage %v; want %d", len(got), r.Segments, r.Damage, len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("record %d = %+v, want %+v", i, got[i], want[i])
				}
			}
			if l2.Segment() <= want[len(want)-1].pos.Seg() {
				t.Fatal("reopened log appends to an old segment")
			}
		})
	}
}

func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(m) == 0 {
		t.Fatal("no segment")
	}
	return m[len(m)-1]
}

func writeN(t *testing.T, dir string, n int) []Pos {
	l, _, _ := open(t, dir, Options{Sync: SyncNever})
	var ps []Pos
	for i := range n {
		p, _ := l.Append(1, []byte(fmt.Sprintf("record-%03d", i)))
		ps = append(ps, p)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return ps
}

// A record cut short at the end is dropped and the file truncated there;
// everything before it is read.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	ps := writeN(t, dir, 10)
	seg := lastSegment(t, dir)
	cut := ps[9].Off() + 7
	if err := os.Truncate(seg, cut); err != nil {
		t.Fatal(err)
	}
	l, got, r := open(t, dir, Options{})
	l.Close()
	if len(got) != 9 || got[8].data != "record-008" || len(r.Damage) != 1 || !strings.Contains(r.Damage[0], "torn tail") {
		t.Fatalf("got %d records, damage %v", len(got), r.Damage)
	}
	if fi, _ := os.Stat(seg); fi.Size() != ps[9].Off() {
		t.Fatalf("segment is %d bytes, want truncated to %d", fi.Size(), ps[9].Off())
	}
	_, got, r = open(t, dir, Options{})
	if len(got) != 9 || len(r.Damage) != 0 {
		t.Fatalf("second start: %d records, damage %v", len(got), r.Damage)
	}
}

// A flipped byte in a middle record loses that record only, and is
// reported with its file and offset.
func TestDamagedMiddle(t *testing.T) {
	dir := t.TempDir()
	ps := writeN(t, dir, 10)
	seg := lastSegment(t, dir)
	b, _ := os.ReadFile(seg)
	b[ps[4].Off()+RecordHeader+3] ^= 0x40
	os.WriteFile(seg, b, 0o600)
	l, got, r := open(t, dir, Options{})
	l.Close()
	if len(got) != 9 || got[4].data != "record-005" || len(r.Damage) != 1 {
		t.Fatalf("got %d records, damage %v", len(got), r.Damage)
	}
	if want := fmt.Sprintf("offset=%d", ps[4].Off()); !strings.Contains(r.Damage[0], want) || !strings.Contains(r.Damage[0], filepath.Base(seg)) {
		t.Fatalf("damage %q does not say %s in %s", r.Damage[0], want, seg)
	}
}

// A record embedded in another record's payload is not taken for a real
// one when resynchronizing: its position is wrong.
func TestEmbeddedRecordIgnored(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := open(t, dir, Options{Sync: SyncNever})
	fake := AppendRecord(nil, 9, MakePos(0, 100), []byte("fake"))
	p, _ := l.Append(1, bytes.Repeat([]byte{0}, 8), fake)
	l.Append(1, []byte("after"))
	l.Close()
	seg := lastSegment(t, dir)
	b, _ := os.ReadFile(seg)
	b[p.Off()+5] ^= 1 // damage the outer record's checksum
	os.WriteFile(seg, b, 0o600)
	_, got, _ := open(t, dir, Options{})
	if len(got) != 1 || got[0].data != "after" {
		t.Fatalf("got %+v", got)
	}
}

func TestBadHeaderRefused(t *testing.T) {
	dir := t.TempDir()
	writeN(t, dir, 1)
	seg := lastSegment(t, dir)
	b, _ := os.ReadFile(seg)
	b[0] = 'X'
	os.WriteFile(seg, b, 0o600)
	if _, _, err := Open(dir, Options{Kind: "test", Logger: quiet}, func(Pos, byte, []byte) {}); err == nil || !strings.Contains(err.Error(), "magic") {
		t.Fatalf("Open = %v, want a bad magic error", err)
	}
	os.WriteFile(filepath.Join(dir, "stray"), nil, 0o600)
	if _, _, err := Open(dir, Options{Kind: "test", Logger: quiet}, func(Pos, byte, []byte) {}); err == nil || !strings.Contains(err.Error(), "unexpected file") {
		t.Fatalf("Open = %v, want an unexpected file error", err)
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := open(t, dir, Options{})
	_, _, err := Open(dir, Options{Kind: "test", Logger: quiet}, func(Pos, byte, []byte) {})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprint(os.Getpid())) {
		t.Fatalf("second Open = %v, want ErrLocked naming pid %d", err, os.Getpid())
	}
	l.Close()
	l, _, _ = open(t, dir, Options{})
	l.Close()
}

// Deleting segments, including the one last appended to, leaves only the
// lock file.
func TestDelete(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := open(t, dir, Options{Sync: SyncAlways, SegmentSize: 256})
	for range 20 {
		l.Append(1, make([]byte, 100))
	}
	last := l.Segment()
	l.Rotate()
	for s := uint64(0); s <= last; s++ {
		l.Delete(s)
	}
	waitDurable(t, l)
	l.Close()
	if m, _ := filepath.Glob(filepath.Join(dir, "*.wal")); len(m) != 0 {
		t.Fatalf("left %v", m)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(AppendRecord(nil, 1, MakePos(3, 32), []byte("payload")), uint64(MakePos(3, 32)))
	f.Add(AppendRecord(nil, 2, 0, nil), uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, pos uint64) {
		typ, p, n, err := DecodeRecord(b, Pos(pos))
		if err != nil {
			return
		}
		if n > len(b) || n != RecordHeader+len(p) || typ == 0 {
			t.Fatalf("decoded size %d of %d bytes, payload %d", n, len(b), len(p))
		}
		again := AppendRecord(nil, typ, Pos(pos), p)
		if !bytes.Equal(again, b[:n]) {
			t.Fatal("re-encoding differs")
		}
	})
}

// A large payload written from the caller's slice reads back as written.
func TestLargePayload(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := open(t, dir, Options{Sync: SyncNever, SegmentSize: 1 << 20})
	big := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640 KB
	var ps []Pos
	for i := range 5 {
		p, _ := l.Append(1, []byte{byte(i)}, big)
		ps = append(ps, p)
		l.Append(2, []byte("small"))
	}
	waitDurable(t, l)
	l.Close()
	_, got, r := open(t, dir, Options{})
	if len(got) != 10 || len(r.Damage) != 0 {
		t.Fatalf("%d records, damage %v", len(got), r.Damage)
	}
	for i := range 5 {
		if g := got[2*i]; g.pos != ps[i] || g.data != string(append([]byte{byte(i)}, big...)) {
			t.Fatalf("record %d differs", i)
		}
	}
}

// FuzzScan reads arbitrary bytes as a segment's records: no panic, every
// record passed on decodes where it was found, and the reading never
// claims more than the bytes given.
func FuzzScan(f *testing.F) {
	rec := AppendRecord(nil, 1, MakePos(0, HeaderSize), []byte("one"))
	rec = AppendRecord(rec, 2, MakePos(0, HeaderSize+int64(len(rec))), []byte("two"))
	f.Add(rec)
	f.Add(rec[:len(rec)-2])
	f.Add(append(append([]byte{}, rec[:5]...), rec...))
	f.Fuzz(func(t *testing.T, body []byte) {
		l := &Log{opts: Options{Kind: "test"}, log: quiet}
		b := append(appendHeader(nil, "test", 0), body...)
		var rec Recovered
		total := 0
		l.scanBytes(filepath.Join("nonexistent", segName(0)), 0, b, func(pos Pos, typ byte, p []byte) {
			if _, q, _, err := DecodeRecord(b[pos.Off():], pos); err != nil || !bytes.Equal(q, p) {
				t.Fatalf("record at %v passed on but does not decode there: %v", pos, err)
			}
			total += RecordHeader + len(p)
		}, &rec)
		if total > len(body) {
			t.Fatalf("%d bytes of records in %d bytes", total, len(body))
		}
	})
}

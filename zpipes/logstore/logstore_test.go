package logstore

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zbroker/zbroker/internal/wal"
	"github.com/zbroker/zbroker/zpipes"
	"github.com/zbroker/zbroker/zpipes/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestContract(t *testing.T) {
	for _, mode := range []wal.SyncMode{wal.SyncNever, wal.SyncAlways} {
		t.Run(mode.String(), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) zpipes.Store {
				s, err := Open(Options{Dir: t.TempDir(), Sync: mode, Logger: quiet, CacheLimit: 1000, SegmentSize: 1 << 16})
				if err != nil {
					t.Fatal(err)
				}
				return s
			})
		})
	}
}

// Chunks consumed after the log wrote them go back to the transport
// (zmtp.Recycle) and are overwritten by later frames: neither the reader
// nor the log may see another chunk's bytes.
func TestRecycledChunksIntact(t *testing.T) {
	for _, mode := range []wal.SyncMode{wal.SyncNever, wal.SyncAlways} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(Options{Dir: dir, Sync: mode, Logger: quiet, CacheLimit: 4 << 20})
			if err != nil {
				t.Fatal(err)
			}
			storetest.RecycledChunksIntact(t, s)
		})
	}
}

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(Options{Dir: dir, Sync: wal.SyncNever, Logger: quiet, CacheLimit: 1 << 10, SegmentSize: 1 << 12})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// settle handles notes until every Append is stored.
func settle(t *testing.T, s *Store) {
	t.Helper()
	for s.tokens.Len() > 0 || s.wal.Written() < s.wal.End() {
		s.Handle(<-s.Notes())
	}
}

// take takes n chunks, consuming those not kept.
func take(t *testing.T, s *Store, q zpipes.Queue, n int, consume bool) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		ch, ok := q.Next()
		if !ok {
			s.Handle(<-s.Notes())
			continue
		}
		if consume {
			q.Consumed([]zpipes.Chunk{ch})
		}
		got = append(got, string(ch.Data))
	}
	return got
}

// After a restart each writer's unconsumed chunks come back in order,
// round robin between writers; those taken but not consumed count as
// redelivered; segments wholly consumed are gone.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	q := s.Queue("p")
	a, b := q.NewWriter(), q.NewWriter()
	for i := range 300 {
		q.Append(a, []byte(fmt.Sprintf("a%03d-%s", i, strings.Repeat("x", 50))), nil)
		q.Append(b, []byte(fmt.Sprintf("b%03d-%s", i, strings.Repeat("x", 50))), nil)
	}
	settle(t, s)
	take(t, s, q, 400, true) // a000..a199, b000..b199
	take(t, s, q, 10, false) // a200..a204, b200..b204: out at the "crash"
	settle(t, s)
	segsBefore, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if _, err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	rec := s.Recovered()
	if len(rec) != 1 || rec[0].Name != "p" || rec[0].Chunks != 200 || s.Stats().Redelivered != 10 {
		t.Fatalf("recovered %+v, stats %+v", rec, s.Stats())
	}
	q = s.Queue("p")
	got := take(t, s, q, 200, true)
	for i, c := range got {
		w, n := "a", 200+i/2
		if i%2 == 1 {
			w = "b"
		}
		if want := fmt.Sprintf("%s%03d-", w, n); !strings.HasPrefix(c, want) {
			t.Fatalf("chunk %d = %.5s, want %s", i, c, want)
		}
	}
	if _, ok := q.Next(); ok {
		t.Fatal("more chunks than written")
	}
	if len(segsBefore) < 3 {
		t.Fatalf("only %d segments: test does not exercise reclamation", len(segsBefore))
	}
	q.Release()
	settle(t, s)
	s.Close()
	if left, _ := filepath.Glob(filepath.Join(dir, "*.wal")); len(left) != 0 {
		t.Fatalf("released pipe left %v", left)
	}
	s = open(t, dir)
	defer s.Close()
	if len(s.Recovered()) != 0 {
		t.Fatalf("recovered %+v after release", s.Recovered())
	}
}

// Segments are deleted as their chunks are consumed, while another pipe
// keeps an old chunk: the marks they held are written again, so nothing
// consumed comes back after a restart.
func TestReclaimKeepsMarks(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	slow, fast := s.Queue("slow"), s.Queue("fast")
	ws, wf := slow.NewWriter(), fast.NewWriter()
	slow.Append(ws, []byte("old-1"), nil)
	slow.Append(ws, []byte("old-2"), nil)
	settle(t, s)
	for i := range 2000 {
		if i == 500 {
			// old-1 consumed: its mark goes into a segment that holds
			// only fast's chunks, deleted long before old-2's.
			take(t, s, slow, 1, true)
		}
		fast.Append(wf, []byte(fmt.Sprintf("f%04d-%s", i, strings.Repeat("y", 40))), nil)
		if i%100 == 99 {
			settle(t, s)
			take(t, s, fast, 100, true)
		}
	}
	settle(t, s)
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	s.Close()
	if len(segs) > 3 {
		t.Fatalf("%d segments kept: consumed ones not reclaimed", len(segs))
	}
	s = open(t, dir)
	defer s.Close()
	if rec := s.Recovered(); len(rec) != 1 || rec[0].Name != "slow" || rec[0].Chunks != 1 {
		t.Fatalf("recovered %+v, want slow's old-2 only", rec)
	}
	if got := take(t, s, s.Queue("slow"), 1, true); got[0] != "old-2" {
		t.Fatalf("got %q", got)
	}
}

// writeChunks stores n chunks "c000".. from one writer and closes the
// store, returning the chunks' positions.
func writeChunks(t *testing.T, dir string, n int) []wal.Pos {
	t.Helper()
	s := open(t, dir)
	q := s.Queue("p")
	w := q.NewWriter()
	for i := range n {
		q.Append(w, []byte(fmt.Sprintf("c%03d", i)), nil)
	}
	settle(t, s)
	var ps []wal.Pos
	wr := s.writers[w]
	for i := 0; i < wr.chunks.Len(); i++ {
		ps = append(ps, wr.chunks.At(i).pos)
	}
	s.Close()
	return ps
}

func segFile(t *testing.T, dir string, p wal.Pos) string {
	return filepath.Join(dir, fmt.Sprintf("%016x.wal", p.Seg()))
}

// A chunk cut short at the end of the log is dropped; all before it are
// served.
func TestTornTailChunk(t *testing.T) {
	dir := t.TempDir()
	ps := writeChunks(t, dir, 50)
	last := ps[len(ps)-1]
	if err := os.Truncate(segFile(t, dir, last), last.Off()+wal.RecordHeader+2); err != nil {
		t.Fatal(err)
	}
	s := open(t, dir)
	defer s.Close()
	if rec := s.Recovered(); len(rec) != 1 || rec[0].Chunks != 49 || s.Stats().Lost != 0 {
		t.Fatalf("recovered %+v, stats %+v", rec, s.Stats())
	}
	for i, c := range take(t, s, s.Queue("p"), 49, true) {
		if c != fmt.Sprintf("c%03d", i) {
			t.Fatalf("chunk %d = %q", i, c)
		}
	}
}

// A damaged chunk in the middle is reported lost; the others are served,
// in order.
func TestDamagedChunk(t *testing.T) {
	dir := t.TempDir()
	ps := writeChunks(t, dir, 50)
	f := segFile(t, dir, ps[20])
	b, _ := os.ReadFile(f)
	b[ps[20].Off()+wal.RecordHeader+5] ^= 0xff
	os.WriteFile(f, b, 0o600)
	s := open(t, dir)
	defer s.Close()
	if rec := s.Recovered(); len(rec) != 1 || rec[0].Chunks != 49 || s.Stats().Lost != 1 {
		t.Fatalf("recovered %+v, stats %+v", rec, s.Stats())
	}
	got := take(t, s, s.Queue("p"), 49, true)
	for i, c := range got {
		want := i
		if i >= 20 {
			want++
		}
		if c != fmt.Sprintf("c%03d", want) {
			t.Fatalf("chunk %d = %q, want c%03d", i, c, want)
		}
	}
}

// BenchmarkRecover1GiB measures Open on a log holding 1 GiB of queued
// chunks (read from the page cache, as after a process restart):
//
//	go test -run x -bench Recover1GiB -benchtime 1x ./zpipes/logstore
func BenchmarkRecover1GiB(b *testing.B) {
	for _, size := range []int{4 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			dir := b.TempDir()
			s, err := Open(Options{Dir: dir, Sync: wal.SyncNever, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			q := s.Queue("p")
			w := q.NewWriter()
			chunk := make([]byte, size)
			for range (1 << 30) / size {
				q.Append(w, chunk, nil)
				if s.tokens.Len() > 1000 {
					for s.tokens.Len() > 1000 {
						s.Handle(<-s.Notes())
					}
				}
			}
			if _, err := s.Close(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				s, err := Open(Options{Dir: dir, Sync: wal.SyncNever, Logger: quiet})
				if err != nil {
					b.Fatal(err)
				}
				if s.Stats().Recovered != (1<<30)/size {
					b.Fatalf("recovered %d chunks", s.Stats().Recovered)
				}
				s.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Seconds())/float64(b.N), "s/recovery")
		})
	}
}

// A pipe that stays open while writers come and go does not keep every
// writer's state; a writer forgotten while idle that writes again keeps
// its chunks, across a restart.
func TestWritersForgotten(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	pin := s.Queue("pin")
	pin.Append(pin.NewWriter(), []byte("pinned"), nil) // keeps the first segment
	q := s.Queue("p")
	first := q.NewWriter()
	for i := range 500 {
		w := first
		if i > 0 {
			w = q.NewWriter()
		}
		q.Append(w, []byte(fmt.Sprintf("x%03d-%s", i, strings.Repeat("z", 60))), nil)
		settle(t, s)
		take(t, s, q, 1, true)
	}
	if n := len(s.writers); n > 100 {
		t.Fatalf("%d writers kept after 500 came and went", n)
	}
	q.Append(first, []byte("again"), nil)
	settle(t, s)
	s.Close()
	s = open(t, dir)
	defer s.Close()
	if rec := s.Recovered(); len(rec) != 2 || rec[0].Chunks+rec[1].Chunks != 2 {
		t.Fatalf("recovered %+v, want pinned and the chunk written again", rec)
	}
	if got := take(t, s, s.Queue("p"), 1, true); got[0] != "again" {
		t.Fatalf("got %q", got)
	}
}

// At most maxOut chunks of a pipe are out without their consumption in
// the log: Next refuses more until the marks are written, then the pipe
// is listed ready.
func TestOutBound(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	q := s.Queue("p")
	w := q.NewWriter()
	for i := range 3 * maxOut {
		q.Append(w, []byte(fmt.Sprint(i)), nil)
	}
	settle(t, s)
	var out []zpipes.Chunk
	for {
		ch, ok := q.Next()
		if !ok {
			break
		}
		out = append(out, ch)
	}
	if len(out) != maxOut {
		t.Fatalf("%d chunks out before Next refused, want %d", len(out), maxOut)
	}
	q.Consumed(out)
	ready := false
	for !ready {
		for _, name := range s.Handle(<-s.Notes()).Ready {
			ready = ready || name == "p"
		}
	}
	if _, ok := q.Next(); !ok {
		t.Fatal("Next still refuses after the marks are written")
	}
}

// The server may consume a writer's later chunk before an earlier one:
// an acknowledging reader acknowledges a chunk it took after one it took
// as a plain reader before CLOSE, still on its way, and then dies; or a
// second reader's chunk reaches its socket before the first reader,
// which CLOSEd with one unwritten, dies. The earlier chunk, given back,
// must survive a restart: the mark may not pass it (the later one may
// come again: at least once).
func TestConsumedOutOfOrderSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	q := s.Queue("p")
	w := q.NewWriter()
	for _, c := range []string{"a", "b", "c", "d"} {
		q.Append(w, []byte(c), nil)
	}
	settle(t, s)
	a, _ := q.Next()
	b, _ := q.Next()
	q.Consumed([]zpipes.Chunk{b})
	q.Return([]zpipes.Chunk{a})
	settle(t, s)
	if _, err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	rec := s.Recovered()
	if len(rec) != 1 || rec[0].Chunks < 3 {
		t.Fatalf("recovered %+v, want a, c and d at least", rec)
	}
	got := strings.Join(take(t, s, s.Queue("p"), rec[0].Chunks, true), "")
	if got != "acd" && got != "abcd" {
		t.Fatalf("after the restart: %q, want a, c, d in order (and b at most once)", got)
	}
}

// Out-of-order consumption across restarts: chunks consumed ahead of an
// earlier one whose segment is then deleted leave a gap in the log; the
// mark passes the gap once the earlier chunk is consumed, so a second
// restart queues nothing consumed again.
func TestConsumedOutOfOrderGapAfterRestart(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir) // 4 KiB segments
	q := s.Queue("p")
	w := q.NewWriter()
	chunk := func(i int) string { return fmt.Sprintf("%03d-%s", i, strings.Repeat("x", 500)) }
	for i := range 40 {
		q.Append(w, []byte(chunk(i)), nil)
	}
	settle(t, s)
	first, _ := q.Next()
	for range 30 { // 1..30 consumed ahead of 0, which goes back
		ch, _ := q.Next()
		q.Consumed([]zpipes.Chunk{ch})
	}
	q.Return([]zpipes.Chunk{first})
	settle(t, s)
	s.Close()
	s = open(t, dir)
	q = s.Queue("p")
	n := s.Recovered()[0].Chunks
	if n >= 30 {
		t.Fatalf("%d chunks recovered: no segment consumed ahead was deleted", n)
	}
	got := take(t, s, q, n-1, true) // 039 stays queued, and its segment
	if got[0] != chunk(0) || got[len(got)-1] != chunk(38) {
		t.Fatalf("after the restart: %d chunks from %.3s to %.3s, want 000 first, 038 last", len(got), got[0], got[len(got)-1])
	}
	settle(t, s)
	s.Close()
	s = open(t, dir)
	defer s.Close()
	if rec := s.Recovered(); len(rec) != 1 || rec[0].Chunks != 1 {
		t.Fatalf("all but 039 consumed, yet %+v recovered after a second restart", rec)
	}
}

// The mark passes exactly the chunks consumed in a row from the first,
// whatever order they are consumed in, and the ranges held ahead of it
// stay few when runs are consumed in order.
func TestConsumedAheadRanges(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 15))
	for round := range 50 {
		const n = 300
		order := rng.Perm(n)
		if round%2 == 0 { // 10 runs of 30 in order, the runs shuffled
			order = order[:0]
			for _, run := range rng.Perm(10) {
				for i := range 30 {
					order = append(order, run*30+i)
				}
			}
		}
		w := &writer{}
		done := make([]bool, n+1)
		for _, k := range order {
			seq := uint64(k + 1)
			done[seq] = true
			if seq > w.consumed {
				w.consumedAhead(seq, seq)
			}
			want := uint64(0)
			for want < n && done[want+1] {
				want++
			}
			if w.consumed != want {
				t.Fatalf("round %d: after consuming %d the mark is %d, want %d (ahead %v)", round, seq, w.consumed, want, w.ahead)
			}
			if round%2 == 0 && len(w.ahead) > 10 {
				t.Fatalf("round %d: %d ranges ahead for 10 runs", round, len(w.ahead))
			}
		}
		if len(w.ahead) != 0 {
			t.Fatalf("round %d: all consumed, %v left ahead", round, w.ahead)
		}
	}
}

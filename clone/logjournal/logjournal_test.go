package logjournal

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"testing"
	"time"

	"github.com/zbroker/zbroker/clone"
	"github.com/zbroker/zbroker/internal/wal"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func open(t *testing.T, dir string) *Journal {
	t.Helper()
	j, err := Open(Options{Dir: dir, Sync: wal.SyncAlways, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// waitStored handles notes until seq is stored.
func waitStored(t *testing.T, j *Journal, seq uint64) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for j.pending.Len() > 0 && j.pending.At(j.pending.Len()-1).seq >= seq {
		select {
		case n := <-j.Notes():
			if through := j.Handle(n); through >= seq {
				return
			}
		case <-timeout:
			t.Fatalf("seq %d not stored", seq)
		}
	}
}

func load(t *testing.T, j *Journal) (map[string]clone.Entry, uint64) {
	t.Helper()
	es, seq, err := j.Load()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]clone.Entry{}
	for _, e := range es {
		m[e.Key] = e
	}
	return m, seq
}

// The map, its sequence and absolute expiries survive a restart, and
// across a compaction, which leaves one segment.
func TestReloadAndCompact(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	want := map[string]clone.Entry{}
	exp := time.Unix(0, time.Now().Add(time.Hour).UnixNano())
	var seq uint64
	set := func(key, body string, expires time.Time) {
		seq++
		e := clone.Entry{Key: key, Seq: seq, Body: []byte(body), UUID: []byte("0123456789abcdef"),
			Props: []clone.Prop{{Name: "ttl", Value: "3600"}}, Expires: expires}
		if body == "" {
			delete(want, key)
			e = clone.Entry{Key: key, Seq: seq}
		} else {
			want[key] = e
		}
		j.Record(e)
	}
	for i := range 12000 {
		set(fmt.Sprintf("/k/%d", i%500), fmt.Sprint("v", i), time.Time{})
	}
	set("/eph", "e", exp)
	set("/k/7", "", time.Time{})
	waitStored(t, j, seq)
	if !j.CompactWanted() {
		t.Fatal("12002 records for 500 keys and no compaction wanted")
	}
	j.Compact(maps.Values(want), seq)
	set("/after", "a", time.Time{})
	waitStored(t, j, seq)
	j.Close()
	if segs, _ := filepath.Glob(filepath.Join(dir, "*.wal")); len(segs) != 1 {
		t.Fatalf("after compaction: segments %v", segs)
	}
	j = open(t, dir)
	defer j.Close()
	got, gotSeq := load(t, j)
	if gotSeq != seq || len(got) != len(want) {
		t.Fatalf("loaded %d keys at seq %d, want %d at %d", len(got), gotSeq, len(want), seq)
	}
	for k, w := range want {
		g := got[k]
		if g.Seq != w.Seq || string(g.Body) != string(w.Body) || string(g.UUID) != string(w.UUID) ||
			!g.Expires.Equal(w.Expires) || len(g.Props) != 1 || g.Props[0] != w.Props[0] {
			t.Fatalf("%s = %+v, want %+v", k, g, w)
		}
	}
}

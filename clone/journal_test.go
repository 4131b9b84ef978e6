package clone

import (
	"iter"
	"testing"
	"time"
)

// gatedJournal loads a fixed state and stores changes only when the test
// says so, as a journal writing to a disk or a cluster reports them later.
type gatedJournal struct {
	MemoryJournal
	entries  []Entry
	seq      uint64
	notes    chan Note
	recorded chan Entry
}

func (g *gatedJournal) Load() ([]Entry, uint64, error) { return g.entries, g.seq, nil }
func (g *gatedJournal) Notes() <-chan Note             { return g.notes }
func (g *gatedJournal) Handle(n Note) uint64           { return n.(uint64) }
func (g *gatedJournal) Record(u Entry) bool {
	g.recorded <- u
	return false
}
func (g *gatedJournal) Compact(iter.Seq[Entry], uint64) error { return nil }

// A loaded map is served with its sequence; a value that expired while
// the server was down is deleted after the start grace, with the next
// sequence number; changes are published only once stored.
func TestJournalLoadAndStoredBeforePublished(t *testing.T) {
	g := &gatedJournal{
		entries: []Entry{
			{Key: "/k", Seq: 40, Body: []byte("v")},
			{Key: "/gone", Seq: 41, Body: []byte("old"), Expires: time.Now().Add(-time.Hour)},
		},
		seq:      41,
		notes:    make(chan Note, 4),
		recorded: make(chan Entry, 4),
	}
	s := startServer(t, Options{Journal: g})
	c := connect(t, clientOpts(s, ""))
	if v, ok := c.Get("/k"); !ok || string(v) != "v" {
		t.Fatalf("loaded key: %q %v", v, ok)
	}
	updates, stop := c.Watch()
	defer stop()
	del := <-g.recorded
	if del.Key != "/gone" || del.Seq != 42 || len(del.Body) != 0 {
		t.Fatalf("recorded %+v, want the delete of /gone as 42", del)
	}
	if _, ok := c.Get("/gone"); !ok {
		t.Fatal("delete published before the journal stored it")
	}
	g.notes <- uint64(42)
	if u := nextUpdate(t, updates); u.Key != "/gone" || u.Value != nil || u.Seq != 42 {
		t.Fatalf("update %+v, want the delete of /gone as 42", u)
	}
	if err := c.Set("/new", []byte("n"), 0); err != nil {
		t.Fatal(err)
	}
	if u := <-g.recorded; u.Seq != 43 {
		t.Fatalf("recorded %+v, want seq 43", u)
	}
	select {
	case u := <-updates:
		t.Fatalf("update %+v published before stored", u)
	case <-time.After(200 * time.Millisecond):
	}
	g.notes <- uint64(43)
	if u := nextUpdate(t, updates); u.Key != "/new" || u.Seq != 43 {
		t.Fatalf("update %+v, want /new as 43", u)
	}
}

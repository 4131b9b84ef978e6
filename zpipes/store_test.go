package zpipes

import (
	"testing"
	"time"
)

// gatedStore is the memory store made asynchronous: Appends are stored
// only when the test says so, as a store writing to a disk or a cluster
// would report them later.
type gatedStore struct {
	Store
	notes   chan Note
	pending []any
}

func newGatedStore() *gatedStore {
	return &gatedStore{Store: NewMemoryStore(), notes: make(chan Note, 16)}
}

type gatedQueue struct {
	Queue
	s *gatedStore
}

func (g *gatedStore) Queue(name string) Queue { return gatedQueue{g.Store.Queue(name), g} }
func (g *gatedStore) Notes() <-chan Note      { return g.notes }

// Handle completes the Appends the note counts, oldest first.
func (g *gatedStore) Handle(n Note) Done {
	k := n.(int)
	d := Done{Stored: g.pending[:k:k]}
	g.pending = g.pending[k:]
	return d
}

func (q gatedQueue) Append(w WriterID, chunk []byte, tok any) bool {
	q.Queue.Append(w, chunk, tok)
	q.s.pending = append(q.s.pending, tok)
	return false
}

// A WRITE's OK waits until the store reports its chunk stored; replies
// keep the connection's command order; a reader may take the chunk at
// once.
func TestWriteOKWaitsForStore(t *testing.T) {
	g := newGatedStore()
	srv := startServer(t, Options{Store: g})
	w := dialPeer(t, srv)
	r := dialPeer(t, srv)
	expect(t, "OPEN", w.do("OPEN", "p"), "OK")
	expect(t, "OPEN", r.do("OPEN", "p"), "OK")
	w.send("WRITE", "p", "a")
	w.send("WRITE", "p", "b")
	w.send("OPEN", "q") // answered at once by itself, but after the WRITEs
	expect(t, "READ", r.do("READ", "p"), "a")
	replies := make(chan string, 3)
	go func() {
		for range 3 {
			f, err := w.c.Recv()
			if err != nil {
				return
			}
			replies <- string(f[0])
		}
	}()
	none := func() {
		t.Helper()
		select {
		case got := <-replies:
			t.Fatalf("reply %q before the store stored the chunk", got)
		case <-time.After(200 * time.Millisecond):
		}
	}
	next := func(want string) {
		t.Helper()
		select {
		case got := <-replies:
			expect(t, "reply", got, want)
		case <-time.After(5 * time.Second):
			t.Fatal("no reply within 5s")
		}
	}
	none()
	g.notes <- 1
	next("OK")
	none()
	g.notes <- 1
	next("OK")
	next("OK")
	expect(t, "READ", r.do("READ", "p"), "b")
}

// A writer that dies before its chunks are stored leaves them queued:
// the store still stores them, and their late completion is ignored.
func TestStoredAfterWriterGone(t *testing.T) {
	g := newGatedStore()
	srv := startServer(t, Options{Store: g})
	w := dialPeer(t, srv)
	expect(t, "OPEN", w.do("OPEN", "p"), "OK")
	w.send("WRITE", "p", "a")
	waitStats(t, srv, func(s Stats) bool { return s.Chunks == 1 })
	w.c.Close()
	waitStats(t, srv, func(s Stats) bool { return s.Clients == 0 })
	g.notes <- 1
	r := dialPeer(t, srv)
	expect(t, "OPEN", r.do("OPEN", "p"), "OK")
	expect(t, "READ", r.do("READ", "p"), "a")
}

package zpipes

import (
	"github.com/zbroker/zbroker/internal/deque"
	"github.com/zbroker/zbroker/zmtp"
)

// NewMemoryStore returns the Store that keeps chunks in this process's
// memory: everything is stored at once and lost when the process ends.
func NewMemoryStore() Store { return &memStore{queues: map[string]*memQueue{}} }

type memStore struct {
	queues  map[string]*memQueue
	writers WriterID
}

func (m *memStore) Queue(pipe string) Queue {
	q := m.queues[pipe]
	if q == nil {
		q = &memQueue{store: m, name: pipe, writers: map[WriterID]*memWriter{}}
		m.queues[pipe] = q
	}
	return q
}

func (m *memStore) Recovered() []RecoveredPipe { return nil }
func (m *memStore) Notes() <-chan Note         { return nil }
func (m *memStore) Handle(Note) Done           { return Done{} }
func (m *memStore) Close() (Kept, error)       { return Kept{}, nil }

// memWriter holds one writer's chunks in its own order.
type memWriter struct {
	id     WriterID
	chunks deque.Deque[[]byte]
	inRing bool
}

type memQueue struct {
	store   *memStore
	name    string
	writers map[WriterID]*memWriter
	// ring lists the writers that hold chunks, served round robin.
	ring []*memWriter
	next int
	// returned holds chunks given back, served first.
	returned deque.Deque[[]byte]
}

func (q *memQueue) NewWriter() WriterID {
	q.store.writers++
	return q.store.writers
}

func (q *memQueue) Append(w WriterID, chunk []byte, _ any) bool {
	mw := q.writers[w]
	if mw == nil {
		mw = &memWriter{id: w}
		q.writers[w] = mw
	}
	mw.chunks.PushBack(chunk)
	if !mw.inRing {
		mw.inRing = true
		q.ring = append(q.ring, mw)
	}
	return true
}

func (q *memQueue) Next() (Chunk, bool) {
	if q.returned.Len() > 0 {
		return Chunk{Data: q.returned.PopFront()}, true
	}
	if len(q.ring) == 0 {
		return Chunk{}, false
	}
	if q.next >= len(q.ring) {
		q.next = 0
	}
	mw := q.ring[q.next]
	chunk := mw.chunks.PopFront()
	if mw.chunks.Len() == 0 {
		mw.inRing = false
		last := len(q.ring) - 1
		copy(q.ring[q.next:], q.ring[q.next+1:])
		q.ring[last] = nil
		q.ring = q.ring[:last]
		delete(q.writers, mw.id)
	} else {
		q.next++
	}
	return Chunk{Data: chunk}, true
}

// Consumed gives the chunks' memory back to the transport: written in
// full to their reader's socket, they are referenced nowhere else.
func (q *memQueue) Consumed(cs []Chunk) {
	for _, c := range cs {
		zmtp.Recycle(c.Data)
	}
}

func (q *memQueue) Return(cs []Chunk) {
	for i := len(cs) - 1; i >= 0; i-- {
		q.returned.PushFront(cs[i].Data)
	}
}

func (q *memQueue) Queued(w WriterID) int {
	if mw := q.writers[w]; mw != nil {
		return mw.chunks.Len()
	}
	return 0
}

func (q *memQueue) Release() {
	if q.store.queues[q.name] == q {
		delete(q.store.queues, q.name)
	}
}

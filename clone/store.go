package clone

import (
	"container/heap"
	"sort"
	"strings"
	"time"
)

// entry is one stored key-value pair.
type entry struct {
	Entry
	idx int // position in the expiry heap, -1 if not in it
}

// store is the server's map plus a heap of its ephemeral entries by
// expiry. Only the server's goroutine touches it.
type store struct {
	m     map[string]*entry
	ttl   expiryHeap
	bytes int64 // sum of the entries' sizes (entrySize)
}

// entrySize is what an entry counts against Options.MaxBytes: its key,
// value, UUID and properties, and 128 bytes for the rest.
func entrySize(e *Entry) int64 {
	n := int64(128 + len(e.Key) + len(e.Body) + len(e.UUID))
	for _, p := range e.Props {
		n += int64(len(p.Name) + len(p.Value) + 2)
	}
	return n
}

func newStore() *store { return &store{m: map[string]*entry{}} }

// put stores a value (a non-empty body) or deletes the key (empty body).
// The entry replaced, if any, leaves the expiry heap.
func (s *store) put(key string, e *entry) {
	if old, ok := s.m[key]; ok {
		if old.idx >= 0 {
			heap.Remove(&s.ttl, old.idx)
		}
		s.bytes -= entrySize(&old.Entry)
	}
	if len(e.Body) == 0 {
		delete(s.m, key)
		return
	}
	e.Key, e.idx = key, -1
	s.m[key] = e
	s.bytes += entrySize(&e.Entry)
	if !e.Expires.IsZero() {
		heap.Push(&s.ttl, e)
	}
}

// nextExpiry is when the earliest ephemeral value expires (zero if none).
func (s *store) nextExpiry() time.Time {
	if len(s.ttl) == 0 {
		return time.Time{}
	}
	return s.ttl[0].Expires
}

// expired removes and returns the entries whose values expired by now,
// in expiry order.
func (s *store) expired(now time.Time) []*entry {
	var out []*entry
	for len(s.ttl) > 0 && !s.ttl[0].Expires.After(now) {
		e := heap.Pop(&s.ttl).(*entry)
		delete(s.m, e.Key)
		s.bytes -= entrySize(&e.Entry)
		out = append(out, e)
	}
	return out
}

// all yields every live entry, for compaction.
func (s *store) all(yield func(Entry) bool) {
	for _, e := range s.m {
		if !yield(e.Entry) {
			return
		}
	}
}

// subtree lists the keys under prefix, sorted.
func (s *store) subtree(prefix string) []string {
	var keys []string
	for k := range s.m {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

type expiryHeap []*entry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].Expires.Before(h[j].Expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*entry)
	e.idx = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.idx = -1
	*h = old[:len(old)-1]
	return e
}

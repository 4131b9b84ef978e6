package clone

import (
	"testing"
	"time"
)

// Overwriting or deleting an ephemeral key takes its old entry out of the
// expiry heap: the heap never holds more than the map.
func TestStoreExpiryHeap(t *testing.T) {
	s := newStore()
	t0 := time.Unix(1000, 0)
	for i := range 1000 {
		s.put("k", &entry{Entry: Entry{Seq: uint64(i), Body: []byte("v"), Expires: t0.Add(time.Duration(i) * time.Second)}})
	}
	s.put("a", &entry{Entry: Entry{Body: []byte("v"), Expires: t0.Add(5 * time.Second)}})
	s.put("b", &entry{Entry: Entry{Body: []byte("v"), Expires: t0.Add(time.Second)}})
	s.put("b", &entry{Entry: Entry{}}) // delete
	s.put("c", &entry{Entry: Entry{Body: []byte("v")}})
	if len(s.ttl) != 2 || len(s.m) != 3 {
		t.Fatalf("heap %d, map %d", len(s.ttl), len(s.m))
	}
	if got := s.expired(t0.Add(10 * time.Second)); len(got) != 1 || got[0].Key != "a" {
		t.Fatalf("expired %v", got)
	}
	if got := s.expired(t0.Add(2000 * time.Second)); len(got) != 1 || got[0].Key != "k" || got[0].Seq != 999 {
		t.Fatalf("expired %v", got)
	}
	if len(s.m) != 1 || !s.nextExpiry().IsZero() {
		t.Fatalf("left %v", s.m)
	}
}

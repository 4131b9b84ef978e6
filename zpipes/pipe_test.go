package zpipes_test

import (
	"testing"

	"github.com/zbroker/zbroker/zpipes"
	"github.com/zbroker/zbroker/zpipes/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.Run(t, func(*testing.T) zpipes.Store { return zpipes.NewMemoryStore() })
}

func BenchmarkMemoryStoreAppendNext(b *testing.B) {
	q := zpipes.NewMemoryStore().Queue("p")
	w := q.NewWriter()
	chunk := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		q.Append(w, chunk, nil)
		q.Next()
	}
}

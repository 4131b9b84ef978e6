package zpipes_test

import (
	"testing"

	"github.com/zbroker/zbroker/zpipes"
	"github.com/zbroker/zbroker/zpipes/storetest"
)

func TestRecycledChunksIntact(t *testing.T) {
	storetest.RecycledChunksIntact(t, zpipes.NewMemoryStore())
}

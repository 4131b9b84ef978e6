package zmtp

import "sync"

// Large bodies are the broker's garbage: every chunk becomes garbage once
// written on, and at 1 MiB a chunk the collector then runs every few
// chunks and costs more than the copying (issue 14's profiles). Recycle
// lets an owner that knows a body is no longer referenced hand it back,
// so the next frame of the same size is read into it.

// recycleMin is the smallest body kept: below it the allocator is cheap.
const recycleMin = 64 << 10

// recycleSizes caps how many distinct sizes are pooled, so that a peer
// sending frames of ever different sizes grows no table.
const recycleSizes = 64

var recycled struct {
	mu    sync.Mutex
	pools map[int]*sync.Pool
}

// Recycle hands back the body b of a frame this package read, once nothing
// references its bytes any more (they were written on, in full, to every
// connection they were sent to, and no one keeps b or a slice of it): a
// later frame of exactly len(b) bytes may be read into it. Bodies under
// 64 KiB, or whose capacity is not their length, are left to the garbage
// collector, as are all once 64 sizes are pooled. Pooled bodies are
// dropped by the collector like any other memory after two cycles unused.
func Recycle(b []byte) {
	if len(b) < recycleMin || cap(b) != len(b) {
		return
	}
	p := recyclePool(len(b), true)
	if p == nil {
		return
	}
	h, _ := holders.Get().(*[]byte)
	if h == nil {
		h = new([]byte)
	}
	*h = b
	p.Put(h)
}

// holders keeps the *[]byte a pool entry needs once its body is taken, so
// that recycling a body costs no allocation.
var holders sync.Pool

// reuseBody returns a recycled body of n bytes (length 0), or nil.
func reuseBody(n int) []byte {
	if n < recycleMin {
		return nil
	}
	if p := recyclePool(n, false); p != nil {
		if h, ok := p.Get().(*[]byte); ok {
			b := (*h)[:0]
			*h = nil
			holders.Put(h)
			return b
		}
	}
	return nil
}

func recyclePool(n int, create bool) *sync.Pool {
	r := &recycled
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pools[n]
	if p == nil && create && len(r.pools) < recycleSizes {
		if r.pools == nil {
			r.pools = map[int]*sync.Pool{}
		}
		p = &sync.Pool{}
		r.pools[n] = p
	}
	return p
}

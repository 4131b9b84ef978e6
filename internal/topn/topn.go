// Package topn keeps the first n of a stream of values in a given order at
// O(log n) per value, so a snapshot of a service with many pipes or
// connections lists the ones that matter without sorting them all.
package topn

import "sort"

// Keeper keeps the first n values added, by less. The zero value keeps
// nothing; use New.
type Keeper[T any] struct {
	n    int
	less func(a, b T) bool
	// h is a heap with the last kept value (by less) at the root, the
	// one a better newcomer replaces.
	h []T
}

// New makes a Keeper of the first n values by less (n <= 0 keeps none).
func New[T any](n int, less func(a, b T) bool) *Keeper[T] {
	return &Keeper[T]{n: n, less: less}
}

// Add offers v.
func (k *Keeper[T]) Add(v T) {
	switch {
	case len(k.h) < k.n:
		k.h = append(k.h, v)
		k.up(len(k.h) - 1)
	case len(k.h) > 0 && k.less(v, k.h[0]):
		k.h[0] = v
		k.down(0)
	}
}

// Sorted returns the values kept, in order; the Keeper must not be used
// afterwards.
func (k *Keeper[T]) Sorted() []T {
	sort.Slice(k.h, func(i, j int) bool { return k.less(k.h[i], k.h[j]) })
	return k.h
}

// after reports whether h[i] must sit above h[j]: it comes later.
func (k *Keeper[T]) after(i, j int) bool { return k.less(k.h[j], k.h[i]) }

func (k *Keeper[T]) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !k.after(i, p) {
			return
		}
		k.h[i], k.h[p] = k.h[p], k.h[i]
		i = p
	}
}

func (k *Keeper[T]) down(i int) {
	for {
		c := 2*i + 1
		if c >= len(k.h) {
			return
		}
		if c+1 < len(k.h) && k.after(c+1, c) {
			c++
		}
		if !k.after(c, i) {
			return
		}
		k.h[i], k.h[c] = k.h[c], k.h[i]
		i = c
	}
}

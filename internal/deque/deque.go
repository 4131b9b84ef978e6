// Package deque is the ring-buffer double-ended queue the services' owner
// goroutines keep their FIFOs in.
package deque

// Deque is a double-ended queue; the zero value is empty and ready.
type Deque[T any] struct {
	buf  []T
	head int
	n    int
}

// Len is the number of elements.
func (d *Deque[T]) Len() int { return d.n }

func (d *Deque[T]) grow() {
	if d.n < len(d.buf) {
		return
	}
	nb := make([]T, max(16, 2*len(d.buf)))
	for i := 0; i < d.n; i++ {
		nb[i] = d.buf[(d.head+i)%len(d.buf)]
	}
	d.buf, d.head = nb, 0
}

// PushBack appends v.
func (d *Deque[T]) PushBack(v T) {
	d.grow()
	d.buf[(d.head+d.n)%len(d.buf)] = v
	d.n++
}

// PushFront puts v ahead of all others.
func (d *Deque[T]) PushFront(v T) {
	d.grow()
	d.head = (d.head - 1 + len(d.buf)) % len(d.buf)
	d.buf[d.head] = v
	d.n++
}

// PopFront removes and returns the first element; the deque must not be
// empty.
func (d *Deque[T]) PopFront() T {
	var zero T
	v := d.buf[d.head]
	d.buf[d.head] = zero // let the element be collected
	d.head = (d.head + 1) % len(d.buf)
	d.n--
	return v
}

// At returns the i-th element from the front.
func (d *Deque[T]) At(i int) T { return d.buf[(d.head+i)%len(d.buf)] }

// Filter keeps the elements for which keep returns true, in order.
func (d *Deque[T]) Filter(keep func(T) bool) {
	var zero T
	w := 0
	for i := 0; i < d.n; i++ {
		v := d.At(i)
		if keep(v) {
			d.buf[(d.head+w)%len(d.buf)] = v
			w++
		}
	}
	for i := w; i < d.n; i++ {
		d.buf[(d.head+i)%len(d.buf)] = zero
	}
	d.n = w
}

package majordomo

// deque is a ring-buffer double-ended queue.
type deque[T any] struct {
	buf  []T
	head int
	n    int
}

func (d *deque[T]) len() int { return d.n }

func (d *deque[T]) grow() {
	if d.n < len(d.buf) {
		return
	}
	nb := make([]T, max(8, 2*len(d.buf)))
	for i := 0; i < d.n; i++ {
		nb[i] = d.buf[(d.head+i)%len(d.buf)]
	}
	d.buf, d.head = nb, 0
}

func (d *deque[T]) pushBack(v T) {
	d.grow()
	d.buf[(d.head+d.n)%len(d.buf)] = v
	d.n++
}

func (d *deque[T]) pushFront(v T) {
	d.grow()
	d.head = (d.head - 1 + len(d.buf)) % len(d.buf)
	d.buf[d.head] = v
	d.n++
}

func (d *deque[T]) popFront() T {
	var zero T
	v := d.buf[d.head]
	d.buf[d.head] = zero
	d.head = (d.head + 1) % len(d.buf)
	d.n--
	return v
}

// at returns the i-th element from the front.
func (d *deque[T]) at(i int) T { return d.buf[(d.head+i)%len(d.buf)] }

// filter keeps the elements for which keep returns true, in order.
func (d *deque[T]) filter(keep func(T) bool) {
	var zero T
	w := 0
	for i := 0; i < d.n; i++ {
		v := d.at(i)
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

// Package owner holds the one idiom the services share for state owned by
// a single goroutine: asking that goroutine for a snapshot.
package owner

// Ask sends a reply channel on queries for the owning goroutine to answer,
// or, once the owner has stopped (stopped closed), returns *final, which
// the owner sets before closing stopped.
func Ask[T any](queries chan<- chan T, stopped <-chan struct{}, final *T) T {
	q := make(chan T, 1)
	select {
	case queries <- q:
		return <-q
	case <-stopped:
		return *final
	}
}

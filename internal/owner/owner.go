// Package owner holds the one idiom the services share for state owned by
// a single goroutine: asking that goroutine for a snapshot.
package owner

import "context"

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

// Do runs f on the owning goroutine, which takes functions from calls, and
// waits for it to finish. It reports false, without running f, once the
// owner has stopped.
func Do(calls chan<- func(), stopped <-chan struct{}, f func()) bool {
	return DoContext(context.Background(), calls, stopped, f) == nil
}

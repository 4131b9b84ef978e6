package owner

import (
	"context"
	"errors"
)

// ErrStopped is returned by DoContext once the owning goroutine has stopped.
var ErrStopped = errors.New("service stopped")

// DoContext is Do that fails with ErrStopped once the owner has stopped
// (stopped closed), or with ctx's error if the owner does not take f in
// time: a health check must not hang on a stuck service. Once taken, f
// runs to completion.
func DoContext(ctx context.Context, calls chan<- func(), stopped <-chan struct{}, f func()) error {
	done := make(chan struct{})
	select {
	case calls <- func() { f(); close(done) }:
	case <-stopped:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	<-done
	return nil
}

package owner

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDoContextRunsOnOwnerStoppedAndTimeout(t *testing.T) {
	calls, stopped := make(chan func()), make(chan struct{})
	state := 0 // owned by the goroutine below
	go func() {
		(<-calls)()
		close(stopped)
	}()
	var seen int
	if err := DoContext(context.Background(), calls, stopped, func() { state = 5; seen = state }); err != nil || seen != 5 {
		t.Fatalf("DoContext on a running owner: err %v, saw %d", err, seen)
	}
	<-stopped
	if err := DoContext(context.Background(), calls, stopped, func() {}); !errors.Is(err, ErrStopped) {
		t.Fatalf("DoContext on a stopped owner: %v, want ErrStopped", err)
	}
	// An owner that never takes the call: Do gives up with ctx's error.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := DoContext(ctx, make(chan func()), make(chan struct{}), func() {}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("DoContext on a stuck owner: %v, want DeadlineExceeded", err)
	}
}

package owner

import "testing"

func TestAskRunningAndStopped(t *testing.T) {
	queries, stopped := make(chan chan int), make(chan struct{})
	final := 0
	go func() {
		(<-queries) <- 7
		final = 9
		close(stopped)
	}()
	if got := Ask(queries, stopped, &final); got != 7 {
		t.Fatalf("running owner answered %d, want 7", got)
	}
	<-stopped
	if got := Ask(queries, stopped, &final); got != 9 {
		t.Fatalf("stopped owner: got %d, want its final 9", got)
	}
}

func TestDoRunsOnOwnerThenRefusesAfterStop(t *testing.T) {
	calls, stopped := make(chan func()), make(chan struct{})
	state := 0 // owned by the goroutine below
	go func() {
		(<-calls)()
		(<-calls)()
		close(stopped)
	}()
	for i := 1; i <= 2; i++ {
		if !Do(calls, stopped, func() { state += 10 }) {
			t.Fatalf("call %d: Do reported a stopped owner", i)
		}
	}
	<-stopped
	if Do(calls, stopped, func() { state = -1 }) {
		t.Fatal("Do ran on a stopped owner")
	}
	if state != 20 {
		t.Fatalf("state %d, want 20", state)
	}
}

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

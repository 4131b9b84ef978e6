package zpipes

import (
	"fmt"
	"testing"
)

func TestFifoOrderAcrossCompaction(t *testing.T) {
	var q fifo
	next, want := 0, 0
	for round := 0; round < 5; round++ {
		for i := 0; i < 3000; i++ {
			q.push([]byte(fmt.Sprint(next)))
			next++
		}
		for i := 0; i < 2500; i++ {
			if got := string(q.pop()); got != fmt.Sprint(want) {
				t.Fatalf("pop = %s, want %d", got, want)
			}
			want++
		}
	}
	q.pushFront([][]byte{[]byte("a"), []byte("b")})
	if a, b := string(q.pop()), string(q.pop()); a != "a" || b != "b" {
		t.Fatalf("pushFront order: %s %s", a, b)
	}
	if got := string(q.pop()); got != fmt.Sprint(want) {
		t.Fatalf("after pushFront pop = %s, want %d", got, want)
	}
}

// A heavy writer's backlog must not delay a light writer by more than one
// round of the ring, and each writer keeps its own order.
func TestPipeRoundRobin(t *testing.T) {
	p := newPipe("p")
	heavy, light := &client{open: map[string]*pipe{"p": p}}, &client{open: map[string]*pipe{"p": p}}
	for i := 0; i < 5000; i++ {
		p.push(p.queueOf(heavy), []byte(fmt.Sprintf("h%d", i)))
	}
	p.push(p.queueOf(light), []byte("l0"))
	var got []string
	for {
		ch, ok := p.pop()
		if !ok {
			break
		}
		got = append(got, string(ch))
	}
	if len(got) != 5001 || p.chunks != 0 || p.bytes != 0 {
		t.Fatalf("drained %d chunks, pipe says %d chunks %d bytes left", len(got), p.chunks, p.bytes)
	}
	pos := -1
	for i, s := range got {
		if s == "l0" {
			pos = i
		}
	}
	if pos < 0 || pos > 2 {
		t.Fatalf("light writer's chunk served at position %d", pos)
	}
	h := 0
	for _, s := range got {
		if s == "l0" {
			continue
		}
		if s != fmt.Sprintf("h%d", h) {
			t.Fatalf("heavy writer out of order: got %s, want h%d", s, h)
		}
		h++
	}
}

func TestPipeDropsDrainedQueueOfClosedWriter(t *testing.T) {
	p := newPipe("p")
	gone := &client{open: map[string]*pipe{}}
	p.push(p.queueOf(gone), []byte("x"))
	if _, ok := p.pop(); !ok {
		t.Fatal("no chunk")
	}
	if len(p.writers) != 0 || len(p.ring) != 0 {
		t.Fatalf("queue of a writer without the pipe open kept: %d writers, %d in ring", len(p.writers), len(p.ring))
	}
	if !p.idle() {
		t.Fatal("empty unopened pipe not idle")
	}
}

func BenchmarkPipePushPop(b *testing.B) {
	p := newPipe("p")
	c := &client{open: map[string]*pipe{"p": p}}
	q := p.queueOf(c)
	chunk := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		p.push(q, chunk)
		p.pop()
	}
}

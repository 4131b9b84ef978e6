package zpipes

import (
	"fmt"
	"testing"
)

// Chunks given back by a dead reader come first, in the order they were
// first read, then the rest in order, across many growths of the queues.
func TestGiveBackOrder(t *testing.T) {
	p := newPipe("p")
	w := &client{open: map[string]*pipe{"p": p}}
	q := p.queueOf(w)
	next, want := 0, 0
	for round := 0; round < 5; round++ {
		for i := 0; i < 3000; i++ {
			p.push(q, []byte(fmt.Sprint(next)))
			next++
		}
		for i := 0; i < 2500; i++ {
			if got, _ := p.pop(); string(got) != fmt.Sprint(want) {
				t.Fatalf("pop = %s, want %d", got, want)
			}
			want++
		}
	}
	p.giveBack([][]byte{[]byte("a"), []byte("b")})
	a, _ := p.pop()
	b, _ := p.pop()
	if string(a) != "a" || string(b) != "b" {
		t.Fatalf("giveBack order: %s %s", a, b)
	}
	if got, _ := p.pop(); string(got) != fmt.Sprint(want) {
		t.Fatalf("after giveBack pop = %s, want %d", got, want)
	}
	if p.chunks != next-want-1 {
		t.Fatalf("pipe counts %d chunks, want %d", p.chunks, next-want-1)
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

// Package storetest checks that a zpipes.Store keeps the contract the
// server relies on (order, fair queuing, give-back, release), so every
// backend runs the same tests.
package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/zbroker/zbroker/zpipes"
)

// Run runs the contract tests; open returns a new, empty store.
func Run(t *testing.T, open func(t *testing.T) zpipes.Store) {
	t.Run("GiveBackOrder", func(t *testing.T) { giveBackOrder(t, open(t)) })
	t.Run("RoundRobin", func(t *testing.T) { roundRobin(t, open(t)) })
	t.Run("Release", func(t *testing.T) { release(t, open(t)) })
	t.Run("HeldForAck", func(t *testing.T) { heldForAck(t, open(t)) })
}

// Settle passes the store's notes to Handle until every Append with a
// token is stored, and returns the stored tokens in order.
func Settle(t *testing.T, s zpipes.Store, pending int) []any {
	t.Helper()
	var stored []any
	for len(stored) < pending {
		d := s.Handle(<-s.Notes())
		stored = append(stored, d.Stored...)
	}
	return stored
}

// appendAll appends and waits until all are stored.
func appendAll(t *testing.T, s zpipes.Store, q zpipes.Queue, w zpipes.WriterID, chunks ...string) {
	t.Helper()
	pending := 0
	for _, c := range chunks {
		if !q.Append(w, []byte(c), c) {
			pending++
		}
	}
	stored := Settle(t, s, pending)
	for i, tok := range stored {
		if want := chunks[len(chunks)-pending+i]; tok != want {
			t.Fatalf("stored token %d = %v, want %v (tokens come back in Append order)", i, tok, want)
		}
	}
}

// next takes a chunk, consuming it unless keep, and passing notes to
// Handle while the store has none ready (it may bound the chunks out to a
// reader until their consumption is written). ok is false if none comes.
func next(t *testing.T, s zpipes.Store, q zpipes.Queue, keep bool) (zpipes.Chunk, bool) {
	t.Helper()
	deadline := time.After(time.Second)
	for {
		if ch, ok := q.Next(); ok {
			if !keep {
				q.Consumed([]zpipes.Chunk{ch})
			}
			return ch, true
		}
		if s.Notes() == nil {
			return zpipes.Chunk{}, false
		}
		select {
		case n := <-s.Notes():
			s.Handle(n)
		case <-deadline:
			return zpipes.Chunk{}, false
		}
	}
}

// Chunks given back come first, in the order given, then the rest in
// order, across many growths of the queues.
func giveBackOrder(t *testing.T, s zpipes.Store) {
	defer s.Close()
	q := s.Queue("p")
	w := q.NewWriter()
	nextIn, want := 0, 0
	for round := 0; round < 5; round++ {
		var batch []string
		for i := 0; i < 3000; i++ {
			batch = append(batch, fmt.Sprint(nextIn))
			nextIn++
		}
		appendAll(t, s, q, w, batch...)
		for i := 0; i < 2500; i++ {
			ch, ok := next(t, s, q, false)
			if !ok || string(ch.Data) != fmt.Sprint(want) {
				t.Fatalf("Next = %q %v, want %d", ch.Data, ok, want)
			}
			want++
		}
	}
	a, _ := next(t, s, q, true)
	b, _ := next(t, s, q, true)
	q.Return([]zpipes.Chunk{a, b})
	a2, _ := next(t, s, q, true)
	b2, _ := next(t, s, q, true)
	if string(a2.Data) != string(a.Data) || string(b2.Data) != string(b.Data) {
		t.Fatalf("after Return got %q %q, want %q %q", a2.Data, b2.Data, a.Data, b.Data)
	}
	q.Consumed([]zpipes.Chunk{a2, b2})
	if got, _ := next(t, s, q, false); string(got.Data) != fmt.Sprint(want+2) {
		t.Fatalf("after Return Next = %q, want %d", got.Data, want+2)
	}
	if n := q.Queued(w); n != nextIn-want-3 {
		t.Fatalf("Queued = %d, want %d", n, nextIn-want-3)
	}
}

// A heavy writer's backlog must not delay a light writer by more than one
// round, and each writer keeps its own order.
func roundRobin(t *testing.T, s zpipes.Store) {
	defer s.Close()
	q := s.Queue("p")
	heavy, light := q.NewWriter(), q.NewWriter()
	if heavy == light {
		t.Fatal("NewWriter returned the same ID twice")
	}
	var hs []string
	for i := 0; i < 5000; i++ {
		hs = append(hs, fmt.Sprintf("h%d", i))
	}
	appendAll(t, s, q, heavy, hs...)
	appendAll(t, s, q, light, "l0")
	var got []string
	for {
		ch, ok := next(t, s, q, false)
		if !ok {
			break
		}
		got = append(got, string(ch.Data))
	}
	if len(got) != 5001 || q.Queued(heavy) != 0 || q.Queued(light) != 0 {
		t.Fatalf("drained %d chunks, %d+%d left", len(got), q.Queued(heavy), q.Queued(light))
	}
	pos := -1
	for i, c := range got {
		if c == "l0" {
			pos = i
		}
	}
	if pos < 0 || pos > 2 {
		t.Fatalf("light writer's chunk served at position %d", pos)
	}
	h := 0
	for _, c := range got {
		if c == "l0" {
			continue
		}
		if c != fmt.Sprintf("h%d", h) {
			t.Fatalf("heavy writer out of order: got %s, want h%d", c, h)
		}
		h++
	}
}

// An acknowledging reader holds many chunks taken, unconsumed, for long
// (AwaitAck): the store keeps serving it (the server bounds what one
// reader holds). What it acknowledges is consumed, in any grouping; what
// it gives back leaving comes first again, in delivery order, ahead of
// chunks given back before.
func heldForAck(t *testing.T, s zpipes.Store) {
	defer s.Close()
	q := s.Queue("p")
	w := q.NewWriter()
	const n = 1000
	var chunks []string
	for i := range n {
		chunks = append(chunks, fmt.Sprint(i))
	}
	appendAll(t, s, q, w, chunks...)
	take := func(from, to int) []zpipes.Chunk {
		t.Helper()
		var held []zpipes.Chunk
		for i := from; i < to; i++ {
			ch, ok := next(t, s, q, true)
			if !ok || string(ch.Data) != chunks[i] {
				t.Fatalf("Next with %d chunks held for acknowledgement = %q %v, want %s", len(held), ch.Data, ok, chunks[i])
			}
			if aw, ok := q.(zpipes.AckWaiter); ok {
				aw.AwaitAck(ch)
			}
			held = append(held, ch)
		}
		return held
	}
	held := take(0, 800)
	q.Consumed(held[:100])
	q.Consumed(held[100:300])
	q.Return(held[300:])
	held = take(300, 500)
	q.Consumed(held[:1])
	q.Return(held[1:])
	for i := 301; i < n; i++ {
		ch, ok := next(t, s, q, false)
		if !ok || string(ch.Data) != chunks[i] {
			t.Fatalf("after acknowledgements and give-backs Next = %q %v, want %s", ch.Data, ok, chunks[i])
		}
	}
	if ch, ok := next(t, s, q, false); ok {
		t.Fatalf("chunk %q left after all were consumed", ch.Data)
	}
}

// A released pipe's queue starts empty when the name is used again.
func release(t *testing.T, s zpipes.Store) {
	defer s.Close()
	q := s.Queue("p")
	w := q.NewWriter()
	appendAll(t, s, q, w, "a")
	ch, ok := next(t, s, q, false)
	if !ok || string(ch.Data) != "a" {
		t.Fatalf("Next = %q %v", ch.Data, ok)
	}
	q.Release()
	q = s.Queue("p")
	if ch, ok := next(t, s, q, false); ok {
		t.Fatalf("released pipe still has %q", ch.Data)
	}
	if s.Queue("p") != q {
		t.Fatal("Queue returned a different queue for the same name")
	}
}

package deque

import (
	"fmt"
	"testing"
)

func TestDeque(t *testing.T) {
	var d Deque[int]
	for i := 0; i < 40; i++ { // past the first growth
		d.PushBack(i)
	}
	d.PushFront(-1)
	for i := 0; i < 5; i++ {
		d.PopFront()
	}
	d.Filter(func(v int) bool { return v%2 == 0 })
	if d.At(0) != 4 {
		t.Fatalf("At(0) = %d, want 4", d.At(0))
	}
	var got []int
	for d.Len() > 0 {
		got = append(got, d.PopFront())
	}
	if fmt.Sprint(got) != "[4 6 8 10 12 14 16 18 20 22 24 26 28 30 32 34 36 38]" {
		t.Fatal(got)
	}
}

func TestFIFOWithPutBack(t *testing.T) {
	var q Deque[int]
	next, want := 0, 0
	for round := 0; round < 100; round++ {
		for i := 0; i < round%37; i++ {
			q.PushBack(next)
			next++
		}
		for i := 0; i < round%23 && q.Len() > 0; i++ {
			if v := q.PopFront(); v != want {
				t.Fatalf("pop %d, want %d", v, want)
			}
			want++
		}
		if q.Len() > 0 {
			v := q.PopFront()
			q.PushFront(v)
		}
		if q.Len() != next-want {
			t.Fatalf("len %d, want %d", q.Len(), next-want)
		}
	}
}

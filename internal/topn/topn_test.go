package topn

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestKeeperMatchesSortAndTruncate(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	less := func(a, b int) bool { return a > b } // the largest first
	for _, n := range []int{0, 1, 3, 10, 100} {
		for _, count := range []int{0, 1, 5, 50, 1000} {
			var all []int
			k := New(n, less)
			for range count {
				v := r.IntN(200) // duplicates on purpose
				all = append(all, v)
				k.Add(v)
			}
			slices.SortFunc(all, func(a, b int) int { return b - a })
			want := all[:min(n, len(all))]
			if got := k.Sorted(); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Fatalf("n=%d count=%d: got %v, want %v", n, count, got, want)
			}
		}
	}
}

package zmtp

import (
	"os"
	"slices"
	"testing"
)

func TestParseGroups(t *testing.T) {
	got, err := parseGroups([]byte("Name:\tbash\nUid:\t1000\t1000\t1000\t1000\nGroups:\t4 24 1000 \nNgid:\t0\n"))
	if err != nil || !slices.Equal(got, []int{4, 24, 1000}) {
		t.Fatalf("got %v, %v", got, err)
	}
	if got, err := parseGroups([]byte("Groups:\t\n")); err != nil || len(got) != 0 {
		t.Fatalf("no groups: %v, %v", got, err)
	}
	for _, bad := range []string{"Name:\tx\n", "Groups:\t4 x\n", "Groups:\t-1\n"} {
		if _, err := parseGroups([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// Our own status file parses.
	if _, err := supplementaryGroups(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

// FuzzParseGroups: any status text gives non-negative gids or an error,
// never a panic.
func FuzzParseGroups(f *testing.F) {
	f.Add([]byte("Groups:\t1 2 3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		gids, err := parseGroups(data)
		if err == nil && slices.ContainsFunc(gids, func(g int) bool { return g < 0 }) {
			t.Fatalf("negative gid in %v", gids)
		}
	})
}

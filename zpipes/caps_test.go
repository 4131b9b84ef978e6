package zpipes

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/zbroker/zbroker/internal/testsupport"
)

// A flood of pipe names from one connection stops at
// MaxPipesPerConnection with an ERROR naming the limit, logged once;
// pipes already open, closed slots and other connections are unaffected.
func TestMaxPipesPerConnection(t *testing.T) {
	var logs testsupport.Buffer
	srv := startServer(t, Options{MaxPipesPerConnection: 5, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	p := dialPeer(t, srv)
	const refusal = "ERROR|too many pipes open on this connection (limit 5)"
	for i := range 50 {
		p.send("OPEN", fmt.Sprintf("flood-%d", i))
		want := "OK"
		if i >= 5 {
			want = refusal
		}
		if got := p.recv(); got != want {
			t.Fatalf("OPEN flood-%d: %q, want %q", i, got, want)
		}
	}
	p.send("OPEN", "flood-0") // already open: still fine
	if got := p.recv(); got != "OK" {
		t.Fatalf("re-OPEN: %q", got)
	}
	p.send("CLOSE", "flood-0")
	p.recv()
	p.send("OPEN", "after-close")
	if got := p.recv(); got != "OK" {
		t.Fatalf("OPEN after a CLOSE: %q", got)
	}
	q := dialPeer(t, srv)
	q.send("OPEN", "other")
	if got := q.recv(); got != "OK" {
		t.Fatalf("another connection: %q", got)
	}
	if n := strings.Count(logs.String(), "too many pipes"); n != 1 {
		t.Fatalf("want one log line for the flood, got %d:\n%s", n, logs.String())
	}
}

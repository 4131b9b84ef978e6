package clone

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/testsupport"
)

// A flood of keys stops at MaxKeys, and values at MaxBytes: the refused
// updates are dropped and logged with the limit, never published; keys
// already held can still change, and a delete makes room.
func TestMapCaps(t *testing.T) {
	var logs testsupport.Buffer
	s := startServer(t, Options{MaxKeys: 10, MaxBytes: 8 << 10, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	c := connect(t, clientOpts(s, ""))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for i := range 10 {
		if err := c.SetWait(ctx, fmt.Sprintf("k%d", i), []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	for i := 10; i < 200; i++ {
		if err := c.Set(fmt.Sprintf("k%d", i), []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the flood refused", func() bool { return s.Stats().Rejected == 190 })
	if st := s.Stats(); st.Keys != 10 {
		t.Fatalf("%d keys held, want 10", st.Keys)
	}
	if !strings.Contains(logs.String(), "the map holds 10 keys (limit 10)") {
		t.Fatalf("refusal not logged with the limit:\n%s", logs.String())
	}
	if _, ok := c.Get("k10"); ok {
		t.Fatal("a refused key reached the client")
	}
	// An existing key changes; a value past MaxBytes does not.
	if err := c.SetWait(ctx, "k0", []byte("changed"), 0); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancelShort()
	if err := c.SetWait(short, "k1", make([]byte, 8<<10), 0); err == nil {
		t.Fatal("a value past MaxBytes was stored")
	}
	if !strings.Contains(logs.String(), "limit 8192") {
		t.Fatalf("byte refusal not logged:\n%s", logs.String())
	}
	// A delete makes room for a new key.
	if err := c.SetWait(ctx, "k2", nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.SetWait(ctx, "new", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
}

package zpipes_test

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/zbroker/zbroker/zpipes"
)

// waitUnacked waits until the broker's acknowledging readers hold n chunks.
func waitUnacked(t *testing.T, srv *zpipes.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for srv.Stats().Unacked != n {
		if time.Now().After(deadline) {
			t.Fatalf("unacknowledged chunks: %+v, want %d", srv.Stats(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Explicit acknowledgement: what a reader did not Ack comes to the next
// reader first, in order, once it disconnects.
func TestAckExplicit(t *testing.T) {
	srv := startBroker(t, zpipes.Options{})
	ctx := testCtx(t)
	w, r := dial(t, srv), dial(t, srv)
	must(t, w.Open(ctx, "p"))
	for _, s := range []string{"a", "b", "c", "d"} {
		must(t, w.Write(ctx, "p", []byte(s)))
	}
	must(t, r.OpenAck(ctx, "p"))
	for _, want := range []string{"a", "b", "c"} {
		if got, err := r.Read(ctx, "p"); err != nil || string(got) != want {
			t.Fatalf("Read = %q, %v; want %q", got, err, want)
		}
	}
	must(t, r.Ack(ctx, "p", 1))
	var refused *zpipes.BrokerError
	if err := r.Ack(ctx, "p", 3); !errors.As(err, &refused) || refused.Command != "ACK" {
		t.Fatalf("Ack of more than held: %v, want a *BrokerError", err)
	}
	if err := r.Open(ctx, "p"); !errors.As(err, &refused) {
		t.Fatalf("Open of a pipe open with ACK: %v, want a *BrokerError", err)
	}
	waitUnacked(t, srv, 2)
	r.Disconnect()
	waitUnacked(t, srv, 0)
	r2 := dial(t, srv)
	must(t, r2.Open(ctx, "p"))
	for _, want := range []string{"b", "c", "d"} {
		if got, err := r2.Read(ctx, "p"); err != nil || string(got) != want {
			t.Fatalf("next reader: Read = %q, %v; want %q", got, err, want)
		}
	}
}

// A Reader WithAck acknowledges what it returned in full: a chunk it
// returned in part, or not at all, goes back when it closes.
func TestReaderWithAck(t *testing.T) {
	srv := startBroker(t, zpipes.Options{})
	w, r := dial(t, srv), dial(t, srv)
	wr := zpipes.NewWriter(w, "p", zpipes.WithEOS())
	for _, s := range []string{"one", "two", "three"} {
		if _, err := wr.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	must(t, wr.Close())

	rd := zpipes.NewReader(r, "p", zpipes.WithAck(), zpipes.WithEOS())
	buf := make([]byte, 5)
	if _, err := io.ReadFull(rd, buf); err != nil || string(buf) != "onetw" {
		t.Fatalf("ReadFull = %q, %v", buf, err)
	}
	// "one", returned in full, was acknowledged with the READ of "two".
	waitUnacked(t, srv, 1)
	must(t, rd.Close())
	waitUnacked(t, srv, 0)

	rd = zpipes.NewReader(r, "p", zpipes.WithAck(), zpipes.WithEOS())
	rest, err := io.ReadAll(rd)
	if err != nil || string(rest) != "twothree" {
		t.Fatalf("next Reader: %q, %v; want twothree (one was acknowledged)", rest, err)
	}
	// At the end of stream everything, the mark too, is acknowledged.
	waitUnacked(t, srv, 0)
	must(t, rd.Close())
	if st := srv.Stats(); st.Chunks != 0 || st.Unacked != 0 {
		t.Fatalf("after reading all: %+v", st)
	}
}

package relay

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/zbroker/zbroker/zmtp"
)

func start(t testing.TB) *Relay {
	t.Helper()
	r, err := Start(fmt.Sprintf("ipc://@/zpipes/relay-test-%d", rand.Uint64()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func dial(t testing.TB, r *Relay, typ string) *zmtp.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := zmtp.Dial(ctx, r.Endpoint(), zmtp.Options{SocketType: typ})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func msg(parts ...string) [][]byte {
	f := make([][]byte, len(parts))
	for i, p := range parts {
		f[i] = []byte(p)
	}
	return f
}

// recv returns the next reply as strings, failing after a timeout.
func recv(t *testing.T, c *zmtp.Conn) []string {
	t.Helper()
	type res struct {
		f   [][]byte
		err error
	}
	ch := make(chan res, 1)
	go func() {
		f, err := c.Recv()
		ch <- res{f, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		out := make([]string, len(r.f))
		for i, f := range r.f {
			out[i] = string(f)
		}
		return out
	case <-time.After(5 * time.Second):
		t.Fatal("no reply within 5s")
		return nil
	}
}

func expect(t *testing.T, c *zmtp.Conn, want ...string) {
	t.Helper()
	if got := recv(t, c); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestRoundTrip(t *testing.T) {
	r := start(t)
	c := dial(t, r, "DEALER")
	for _, m := range [][][]byte{msg("OPEN", "p"), msg("WRITE", "p", "one"), msg("WRITE", "p", "two"), msg("WRITE", "q", "other")} {
		c.Send(m)
		expect(t, c, "OK")
	}
	c.Send(msg("READ", "p"))
	expect(t, c, "one")
	c.Send(msg("READ", "p"))
	expect(t, c, "two")
	c.Send(msg("READ", "q"))
	expect(t, c, "other")
	c.Send(msg("CLOSE", "p"))
	expect(t, c, "OK")
	// Not crashing on nonsense is all the validation there is.
	for _, m := range [][][]byte{msg("NOPE", "p"), msg("READ"), msg("WRITE", "p"), msg("X")} {
		c.Send(m)
		if got := recv(t, c); len(got) != 2 || got[0] != "ERROR" {
			t.Fatalf("%q: got %q, want an ERROR reply", m, got)
		}
	}
}

func TestWaitingRead(t *testing.T) {
	r := start(t)
	rd, wr := dial(t, r, "DEALER"), dial(t, r, "DEALER")
	rd.Send(msg("READ", "p"))
	rd.Send(msg("READ", "p"))
	time.Sleep(50 * time.Millisecond) // let both READs wait in the relay
	wr.Send(msg("WRITE", "p", "a"))
	expect(t, wr, "OK")
	expect(t, rd, "a")
	wr.Send(msg("WRITE", "p", "b"))
	expect(t, wr, "OK")
	expect(t, rd, "b")
}

func TestReaderGone(t *testing.T) {
	r := start(t)
	gone := dial(t, r, "DEALER")
	gone.Send(msg("READ", "p"))
	time.Sleep(50 * time.Millisecond)
	gone.Close()
	time.Sleep(50 * time.Millisecond) // its Disconnected reaches the relay
	wr, rd := dial(t, r, "DEALER"), dial(t, r, "DEALER")
	wr.Send(msg("WRITE", "p", "kept"))
	expect(t, wr, "OK")
	rd.Send(msg("READ", "p"))
	expect(t, rd, "kept")
}

func TestREQEnvelope(t *testing.T) {
	r := start(t)
	c := dial(t, r, "REQ")
	c.Send(msg("", "WRITE", "p", "x"))
	expect(t, c, "", "OK")
	c.Send(msg("", "READ", "p"))
	expect(t, c, "", "x")
}

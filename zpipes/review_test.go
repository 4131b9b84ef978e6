package zpipes

import (
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// rawPeer is a DEALER that speaks just enough ZMTP to send commands and
// never reads what the broker sends back, so replies stay unwritten.
type rawPeer struct{ nc net.Conn }

func dialRaw(t *testing.T, srv *Server) *rawPeer {
	t.Helper()
	nc, err := net.Dial("unix", strings.TrimPrefix(srv.Endpoint(), "ipc://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	greeting := make([]byte, 64)
	greeting[0], greeting[9], greeting[10], greeting[11] = 0xFF, 0x7F, 3, 1
	copy(greeting[12:], "NULL")
	nc.Write(greeting)
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(nc, make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	ready := append([]byte{5}, "READY"...)
	ready = append(ready, 11)
	ready = append(ready, "Socket-Type"...)
	ready = binary.BigEndian.AppendUint32(ready, 6)
	ready = append(ready, "DEALER"...)
	nc.Write(append([]byte{0x04, byte(len(ready))}, ready...))
	var hdr [2]byte
	if _, err := io.ReadFull(nc, hdr[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(nc, make([]byte, hdr[1])); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Time{})
	return &rawPeer{nc}
}

func (r *rawPeer) send(parts ...string) {
	var b []byte
	for i, p := range parts {
		flags := byte(0)
		if i < len(parts)-1 {
			flags = 1
		}
		b = append(b, flags|0x02)
		b = binary.BigEndian.AppendUint64(b, uint64(len(p)))
		b = append(b, p...)
	}
	r.nc.Write(b)
}

// A reader that CLOSEs a pipe while its READ reply is still queued does
// not let the pipe be released (the chunk is still out); if it then dies,
// the unsent chunk must come back, not vanish.
func TestChunkReturnedAfterPipeReleased(t *testing.T) {
	srv := startServer(t, Options{})
	w := dialPeer(t, srv)
	big := strings.Repeat("x", 16<<20)
	expect(t, "OPEN", w.do("OPEN", "p"), "OK")
	expect(t, "WRITE", w.do("WRITE", "p", big), "OK")
	expect(t, "CLOSE", w.do("CLOSE", "p"), "OK")
	r := dialRaw(t, srv)
	r.send("OPEN", "p")
	r.send("READ", "p")
	r.send("CLOSE", "p")
	waitStats(t, srv, func(s Stats) bool { return s.Clients == 2 && s.Pipes == 1 && s.Chunks == 0 })
	r.nc.Close()
	waitStats(t, srv, func(s Stats) bool { return s.Clients == 1 && s.Chunks == 1 })
	r2 := dialPeer(t, srv)
	expect(t, "OPEN", r2.do("OPEN", "p"), "OK")
	if got := r2.do("READ", "p"); got != big {
		t.Fatalf("READ after the dead reader: got %d bytes, want the 16 MiB chunk", len(got))
	}
	expect(t, "CLOSE", r2.do("CLOSE", "p"), "OK")
	waitStats(t, srv, func(s Stats) bool { return s.Pipes == 0 && s.QueuedBytes == 0 })
}

// Chunks are charged their pipe name too, since small ones keep it alive.
func TestChunkCostIncludesPipeName(t *testing.T) {
	srv := startServer(t, Options{PipeLimit: 1000})
	w := dialPeer(t, srv)
	name := strings.Repeat("n", 255)
	expect(t, "OPEN", w.do("OPEN", name), "OK")
	for i := 0; i < 10; i++ {
		w.send("WRITE", name, "")
	}
	// Each empty chunk costs 255+64 = 319: 0, 319, 638, 957 are under
	// 1000, so four are taken and six held.
	for i := 0; i < 4; i++ {
		expect(t, "WRITE", w.recv(), "OK")
	}
	st := waitStats(t, srv, func(s Stats) bool { return s.Stalled == 6 })
	if st.Chunks != 4 || st.QueuedBytes != 4*319 {
		t.Fatalf("stats %+v, want 4 chunks of cost 319", st)
	}
}

// A held WRITE whose connection CLOSEs the pipe and then dies leaves
// nothing behind: the pipe is released.
func TestHeldWriteClosedAndDroppedReleasesPipe(t *testing.T) {
	srv := startServer(t, Options{TotalLimit: 1000})
	a := dialPeer(t, srv)
	expect(t, "OPEN", a.do("OPEN", "a"), "OK")
	expect(t, "WRITE", a.do("WRITE", "a", strings.Repeat("x", 2000)), "OK")
	for i := 0; i < 5; i++ {
		b := dialPeer(t, srv)
		expect(t, "OPEN", b.do("OPEN", "b"), "OK")
		b.send("WRITE", "b", "held")
		b.send("CLOSE", "b")
		waitStats(t, srv, func(s Stats) bool { return s.Stalled == 1 })
		b.c.Close()
		waitStats(t, srv, func(s Stats) bool { return s.Clients == 1 })
	}
	if st := srv.Stats(); st.Pipes != 1 || st.Stalled != 0 {
		t.Fatalf("after held writers closed and died: %+v, want only pipe a", st)
	}
}

// One connection may write past the pipe limit and then read the same
// pipe: the broker reads on past the held WRITEs (up to its read-ahead)
// so the READs that drain the pipe arrive.
func TestSameConnectionWritesPastLimitThenReads(t *testing.T) {
	srv := startServer(t, Options{PipeLimit: 10 << 10})
	c := dialPeer(t, srv)
	chunk := strings.Repeat("c", 1024)
	c.send("OPEN", "p")
	for i := 0; i < 500; i++ {
		c.send("WRITE", "p", chunk)
	}
	for i := 0; i < 500; i++ {
		c.send("READ", "p")
	}
	expect(t, "OPEN", c.recv(), "OK")
	for i := 0; i < 500; i++ {
		expect(t, "WRITE", c.recv(), "OK")
	}
	for i := 0; i < 500; i++ {
		expect(t, "READ", c.recv(), chunk)
	}
}

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

package zmtp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
)

func reader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

// TestFrameWireFormat checks the encoder and decoder against hand-written
// bytes from RFC 23, not just against each other.
func TestFrameWireFormat(t *testing.T) {
	long300 := append([]byte{flagLong, 0, 0, 0, 0, 0, 0, 1, 44}, bytes.Repeat([]byte{'x'}, 300)...)
	cases := []struct {
		name  string
		wire  []byte
		flags byte
		body  []byte
	}{
		{"empty", []byte{0, 0}, 0, []byte{}},
		{"short", []byte{0, 3, 'a', 'b', 'c'}, 0, []byte("abc")},
		{"more", []byte{flagMore, 1, 'z'}, flagMore, []byte("z")},
		{"short-255", append([]byte{0, 255}, bytes.Repeat([]byte{'y'}, 255)...), 0, bytes.Repeat([]byte{'y'}, 255)},
		{"long-300", long300, flagLong, bytes.Repeat([]byte{'x'}, 300)},
		{"long-more", append([]byte{flagLong | flagMore, 0, 0, 0, 0, 0, 0, 1, 0}, make([]byte, 256)...), flagLong | flagMore, make([]byte, 256)},
		// A small frame in long form is legal (libzmq accepts it).
		{"long-small", []byte{flagLong, 0, 0, 0, 0, 0, 0, 0, 2, 'h', 'i'}, flagLong, []byte("hi")},
		{"command", []byte{flagCommand, 5, 4, 'P', 'O', 'N', 'G'}, flagCommand, []byte("\x04PONG")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := reader(append(c.wire, 0xEE)) // a trailing byte must be left alone
			flags, body, err := readFrame(r, 1<<20)
			if err != nil {
				t.Fatalf("readFrame: %v", err)
			}
			if flags != c.flags || !bytes.Equal(body, c.body) {
				t.Fatalf("got flags %#x body %q, want %#x %q", flags, body, c.flags, c.body)
			}
			if b, _ := r.ReadByte(); b != 0xEE {
				t.Fatalf("readFrame consumed past the frame")
			}
			if c.name == "long-small" {
				return // we always encode small frames short
			}
			var enc []byte
			if flags&flagCommand != 0 {
				name, data, err := parseCommand(body)
				if err != nil {
					t.Fatal(err)
				}
				enc = appendCommand(nil, name, data)
			} else {
				enc = appendFrameHeader(nil, flags&flagMore, len(body))
				enc = append(enc, body...)
			}
			if !bytes.Equal(enc, c.wire) {
				t.Fatalf("encoding differs from the wire format:\n got %x\nwant %x", enc[:min(len(enc), 16)], c.wire[:min(len(c.wire), 16)])
			}
		})
	}
}

func TestFrameRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 254, 255, 256, 4096, firstChunk - 1, firstChunk, firstChunk + 1, 3*firstChunk + 17, 1<<20 + 5}
	var wire []byte
	type want struct {
		flags byte
		body  []byte
	}
	var wants []want
	for i, n := range sizes {
		for _, more := range []bool{false, true} {
			body := patterned(n, byte(i))
			var flags byte
			if more {
				flags = flagMore
			}
			wire = appendFrameHeader(wire, flags, n)
			wire = append(wire, body...)
			if n > 255 {
				flags |= flagLong
			}
			wants = append(wants, want{flags, body})
		}
	}
	wire = appendCommand(wire, "PING", []byte{0, 30, 'c', 't', 'x'})
	wants = append(wants, want{flagCommand, []byte("\x04PING\x00\x1ectx")})
	big := patterned(1000, 9)
	wire = appendCommand(wire, "BIGCMD", big)
	wants = append(wants, want{flagCommand | flagLong, append([]byte("\x06BIGCMD"), big...)})

	r := reader(wire)
	for i, w := range wants {
		flags, body, err := readFrame(r, 1<<30)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if flags != w.flags || !bytes.Equal(body, w.body) {
			t.Fatalf("frame %d: got flags %#x, %d bytes; want %#x, %d bytes", i, flags, len(body), w.flags, len(w.body))
		}
	}
	if _, _, err := readFrame(r, 1<<30); err != io.EOF {
		t.Fatalf("after the last frame: got %v, want io.EOF", err)
	}
}

func TestFrameReservedFlagsRejected(t *testing.T) {
	for bit := byte(0x08); bit != 0; bit <<= 1 {
		_, _, err := readFrame(reader([]byte{bit, 0}), 1<<20)
		var pe *ProtocolError
		if !errors.As(err, &pe) {
			t.Errorf("flags %#x: got %v, want a ProtocolError", bit, err)
		}
	}
}

func TestFrameCommandWithMoreRejected(t *testing.T) {
	_, _, err := readFrame(reader([]byte{flagCommand | flagMore, 5, 4, 'P', 'I', 'N', 'G'}), 1<<20)
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v, want a ProtocolError", err)
	}
}

func TestFrameTruncated(t *testing.T) {
	if _, _, err := readFrame(reader(nil), 100); err != io.EOF {
		t.Errorf("empty input: got %v, want io.EOF", err)
	}
	for _, wire := range [][]byte{
		{0},                                     // no size
		{flagLong, 0, 0, 0},                     // short long size
		{0, 5, 'a', 'b'},                        // short body
		{flagLong, 0, 0, 0, 0, 0, 0, 1, 0, 'a'}, // short long body
	} {
		if _, _, err := readFrame(reader(wire), 1<<20); err != io.ErrUnexpectedEOF {
			t.Errorf("%x: got %v, want io.ErrUnexpectedEOF", wire, err)
		}
	}
}

// TestFrameOverBudget: a frame announced larger than the budget is refused
// from its header alone, whatever follows.
func TestFrameOverBudget(t *testing.T) {
	hdr := binary.BigEndian.AppendUint64([]byte{flagLong}, 1<<40)
	rest := []byte("the rest must not be read")
	br := reader(append(hdr, rest...))
	before := heapAlloc()
	_, _, err := readFrame(br, 256<<20)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("1 TiB frame: got %v, want ErrTooLarge", err)
	}
	if d := int64(heapAlloc()) - int64(before); d > 16<<20 {
		t.Fatalf("refusing a 1 TiB frame allocated %d bytes", d)
	}
	if br.Buffered() != len(rest) {
		t.Fatalf("readFrame read past the refused header (%d of %d bytes left)", br.Buffered(), len(rest))
	}
	if _, _, err := readFrame(reader([]byte{0, 11}), 10); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("11-byte frame with budget 10: got %v, want ErrTooLarge", err)
	}
	if _, _, err := readFrame(reader(append([]byte{0, 10}, make([]byte, 10)...)), 10); err != nil {
		t.Fatalf("10-byte frame with budget 10: %v", err)
	}
}

// TestFrameGrowsWithData: a frame within the budget but announced huge is
// allocated as its bytes arrive, not up front.
func TestFrameGrowsWithData(t *testing.T) {
	hdr := binary.BigEndian.AppendUint64([]byte{flagLong}, 1<<40)
	wire := append(hdr, make([]byte, 3<<20)...) // 3 MiB, then EOF
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := readFrame(bufio.NewReader(bytes.NewReader(wire)), 2<<40)
	runtime.ReadMemStats(&after)
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 32<<20 {
		t.Fatalf("reading 3 MiB of an announced 1 TiB frame allocated %d MiB", d>>20)
	}
}

func TestParseCommand(t *testing.T) {
	name, data, err := parseCommand([]byte("\x05READYabc"))
	if err != nil || name != "READY" || string(data) != "abc" {
		t.Fatalf("got %q %q %v", name, data, err)
	}
	name, data, err = parseCommand([]byte("\x04PING"))
	if err != nil || name != "PING" || len(data) != 0 {
		t.Fatalf("got %q %q %v", name, data, err)
	}
	for _, body := range []string{"", "\x00", "\x00abc", "\x05READ", "\xffX"} {
		if _, _, err := parseCommand([]byte(body)); err == nil {
			t.Errorf("parseCommand(%q) accepted a malformed command", body)
		}
	}
}

// ---- fuzzing ----

// FuzzReadFrame: any input either fails or yields frames within the budget
// whose re-encoding decodes to the same frame; an announced size over the
// budget is always ErrTooLarge.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 3, 'a', 'b', 'c'}, uint32(1<<20))
	f.Add([]byte{flagMore, 0, 0, 1, 'x'}, uint32(1<<20))
	f.Add([]byte{flagLong, 0, 0, 0, 0, 0, 0, 1, 0}, uint32(100))
	f.Add(binary.BigEndian.AppendUint64([]byte{flagLong}, 1<<40), uint32(1<<30))
	f.Add([]byte{flagCommand, 5, 4, 'P', 'I', 'N', 'G'}, uint32(64))
	f.Add([]byte{flagCommand | flagMore, 1, 0}, uint32(64))
	f.Add([]byte{0x80, 0}, uint32(64))
	f.Fuzz(func(t *testing.T, data []byte, budget uint32) {
		// Budgets above the input size stay small so that the fuzzer
		// cannot ask for big allocations through the budget alone.
		b := int64(budget % (1 << 22))
		r := reader(data)
		for {
			// What the header announces, for the oracle below.
			var announced uint64
			known := false
			if rest, _ := r.Peek(9); len(rest) >= 2 && rest[0]&^flagMask == 0 && !(rest[0]&flagCommand != 0 && rest[0]&flagMore != 0) {
				if rest[0]&flagLong == 0 {
					announced, known = uint64(rest[1]), true
				} else if len(rest) == 9 {
					announced, known = binary.BigEndian.Uint64(rest[1:]), true
				}
			}
			flags, body, err := readFrame(r, b)
			if err != nil {
				if known && announced > uint64(b) && !errors.Is(err, ErrTooLarge) {
					t.Fatalf("frame of %d bytes over budget %d: got %v, want ErrTooLarge", announced, b, err)
				}
				return
			}
			if known && announced > uint64(b) {
				t.Fatalf("frame of %d bytes accepted with budget %d", announced, b)
			}
			if int64(len(body)) > b {
				t.Fatalf("body of %d bytes over budget %d", len(body), b)
			}
			if flags&^flagMask != 0 || flags&flagCommand != 0 && flags&flagMore != 0 {
				t.Fatalf("invalid flags %#x accepted", flags)
			}
			enc := appendFrameHeader(nil, flags&^flagLong, len(body))
			enc = append(enc, body...)
			f2, b2, err := readFrame(reader(enc), int64(len(body)))
			if err != nil || f2&^flagLong != flags&^flagLong || !bytes.Equal(b2, body) {
				t.Fatalf("re-encoded frame did not round trip: %v", err)
			}
		}
	})
}

// FuzzParseCommand: a parsed command re-encodes to the same body.
func FuzzParseCommand(f *testing.F) {
	f.Add([]byte("\x05READY\x0bSocket-Type\x00\x00\x00\x06DEALER"))
	f.Add([]byte("\x04PING\x00\x1e"))
	f.Add([]byte("\x05ERROR\x03bad"))
	f.Add([]byte{0})
	f.Add([]byte{200, 'x'})
	f.Fuzz(func(t *testing.T, body []byte) {
		name, data, err := parseCommand(body)
		if err != nil {
			return
		}
		if name == "" || 1+len(name)+len(data) != len(body) {
			t.Fatalf("parseCommand(%q) = %q, %q: lengths do not add up", body, name, data)
		}
		enc := appendCommand(nil, name, data)
		flags, got, err := readFrame(reader(enc), int64(len(enc)))
		if err != nil || flags&flagCommand == 0 || !bytes.Equal(got, body) {
			t.Fatalf("command %q did not round trip: %v", name, err)
		}
	})
}

// dribble returns at most n bytes per Read, like a socket.
type dribble struct {
	r io.Reader
	n int
}

func (d dribble) Read(p []byte) (int, error) { return d.r.Read(p[:min(len(p), d.n)]) }

// counted counts the bytes read through it.
type counted struct {
	r io.Reader
	n *int
}

func (c counted) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += n
	return n, err
}

// Large frames arriving in pieces, through bodies that grow as they
// arrive: every body read is whole and its own, however the reads fall,
// and what stays charged for it is its own size. With the source beneath
// the read buffer at hand, most of their bytes are read straight into
// place, and the frames behind a body still come through the buffer.
func TestFrameLargeBodies(t *testing.T) {
	sizes := []int{64 << 10, 64<<10 + 1, 300 << 10, 20 << 10, 1 << 20, 5000, 1<<20 + 5, 3<<20 + 7, 1 << 20, 100}
	var wire []byte
	total := 0
	for i, n := range sizes {
		wire = appendFrameHeader(wire, 0, n)
		wire = append(wire, patterned(n, byte(i))...)
		total += n
	}
	for _, direct := range []bool{false, true} {
		for _, step := range []int{1000, 64 << 10, 200 << 10} {
			d := dribble{bytes.NewReader(wire), step}
			r := bufio.NewReaderSize(d, 64<<10)
			var mem testMemory
			directBytes := 0
			if direct {
				mem.src = counted{d, &directBytes}
			}
			var bodies [][]byte
			for i, n := range sizes {
				mem.charged = 0
				_, body, err := readFrameInto(r, 1<<30, nil, &mem)
				charged := mem.charged
				if err != nil {
					t.Fatalf("step %d, frame %d: %v", step, i, err)
				}
				if len(body) != n || cap(body) != n {
					t.Fatalf("step %d, frame %d: %d bytes (cap %d), want %d", step, i, len(body), cap(body), n)
				}
				if charged != n {
					t.Errorf("step %d, frame %d of %d bytes: %d charged", step, i, n, charged)
				}
				bodies = append(bodies, body)
			}
			if direct && directBytes < total/2 {
				t.Errorf("step %d: %d of %d bytes read straight into place", step, directBytes, total)
			}
			// Checked after all were read: no body shares memory with
			// a staging buffer used again later.
			for i, b := range bodies {
				if !bytes.Equal(b, patterned(sizes[i], byte(i))) {
					t.Fatalf("step %d, frame %d: body differs", step, i)
				}
			}
		}
	}
}

// A frame with an 8-byte size read into a buffer of its own allocates
// nothing (the size used to escape through io.ReadFull).
func TestReadLongFrameAllocs(t *testing.T) {
	const n = 1000
	wire := append(appendFrameHeader(nil, 0, n), patterned(n, 3)...)
	src := bytes.NewReader(wire)
	r := bufio.NewReaderSize(src, 4096)
	buf := make([]byte, n)
	allocs := testing.AllocsPerRun(100, func() {
		src.Reset(wire)
		r.Reset(src)
		if _, body, err := readFrameInto(r, 1<<20, buf, nil); err != nil || len(body) != n {
			t.Fatalf("read %d bytes, %v", len(body), err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per frame, want 0", allocs)
	}
}

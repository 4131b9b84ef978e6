package zmtp

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame flag bits (RFC 23/ZMTP section "Framing"). The other five bits are
// reserved and must be zero.
const (
	flagMore    = 0x01
	flagLong    = 0x02
	flagCommand = 0x04
	flagMask    = flagMore | flagLong | flagCommand
)

// ErrTooLarge is returned when a peer announces a frame or message larger
// than Options.MaxMessageSize. The connection is dropped before any of it is
// allocated.
var ErrTooLarge = errors.New("zmtp: message exceeds maximum size")

// ProtocolError reports a peer that broke the wire protocol.
type ProtocolError struct{ Reason string }

func (e *ProtocolError) Error() string { return "zmtp: protocol error: " + e.Reason }

func protoErr(format string, args ...any) error {
	return &ProtocolError{Reason: fmt.Sprintf(format, args...)}
}

// readFrame reads one frame. budget is how many body bytes the current
// message may still use; frames beyond it fail with ErrTooLarge.
func readFrame(r *bufio.Reader, budget int64) (flags byte, body []byte, err error) {
	return readFrameInto(r, budget, nil, nil)
}

// frameMemory accounts for the memory of frames being read (see
// readState): charge before each allocation, and how many bytes of the
// frame have arrived in the kernel beyond r's buffer. source is the
// reader beneath r's buffer (nil: none), for reading large bodies
// straight into place.
type frameMemory interface {
	charge(n int) error
	queued() int
	source() io.Reader
}

// readFrameInto is readFrame reading the body into buf when it fits,
// else into memory that grows as the body arrives: never more than eight
// times the bytes that have arrived (in r's buffer, or in the kernel's as
// mem.queued says), at least firstChunk: four times, or the whole size
// once that is no more than twice as much. A peer announcing a large frame
// and stalling holds little of ours, and a frame arriving fast gets its
// whole size in one or two steps. mem may be nil: no accounting. The
// final body may be one given back with Recycle.
func readFrameInto(r *bufio.Reader, budget int64, buf []byte, mem frameMemory) (flags byte, body []byte, err error) {
	var src io.Reader
	if mem != nil {
		src = mem.source()
	}
	flags, err = r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	if flags&^flagMask != 0 {
		return 0, nil, protoErr("reserved frame flag bits set (0x%02x)", flags)
	}
	if flags&flagCommand != 0 && flags&flagMore != 0 {
		return 0, nil, protoErr("command frame with MORE flag")
	}
	var size uint64
	if flags&flagLong != 0 {
		// Peeked, not read into an array, which would escape
		// through io.ReadFull: an allocation per frame.
		b, err := r.Peek(8)
		if err != nil {
			return 0, nil, unexpected(err)
		}
		size = binary.BigEndian.Uint64(b)
		r.Discard(8)
	} else {
		b, err := r.ReadByte()
		if err != nil {
			return 0, nil, unexpected(err)
		}
		size = uint64(b)
	}
	if size > uint64(budget) {
		return 0, nil, fmt.Errorf("%w: frame of %d bytes, %d allowed", ErrTooLarge, size, budget)
	}
	if buf != nil && size <= uint64(cap(buf)) {
		body = buf[:size]
		if _, err = readBody(r, src, body); err != nil {
			return 0, nil, unexpected(err)
		}
		return flags, body, nil
	}
	for uint64(len(body)) < size || body == nil {
		if len(body) == cap(body) {
			arrived := len(body) + r.Buffered()
			next := uint64(max(firstChunk, 4*arrived))
			if mem != nil && 2*next < size {
				// Only now ask the kernel (a syscall) what else has
				// arrived: a frame that fits in firstChunk, or is
				// mostly buffered already, is taken whole anyway.
				arrived += mem.queued()
				next = uint64(max(firstChunk, 4*arrived))
			}
			if 2*next >= size { // half way there: take it all, no more copies
				next = size
			}
			if mem != nil {
				if err := mem.charge(int(next) - cap(body)); err != nil {
					return 0, nil, err
				}
			}
			var grown []byte
			if next == size {
				grown = reuseBody(int(size))
			}
			if grown == nil {
				grown = make([]byte, 0, next)
			}
			grown = grown[:len(body)]
			copy(grown, body)
			body = grown
		}
		n, err := readBody(r, src, body[len(body):cap(body)])
		body = body[:len(body)+n]
		if err != nil {
			return 0, nil, unexpected(err)
		}
	}
	return flags, body, nil
}

// directRead is the least of a body that is read from src straight into
// place rather than through the read buffer, which would read it and
// then copy it: nearly every byte of a large frame went through both
// (the copy was 4-10% of the broker's CPU at 64 KiB, issue 14). Below it, a
// read into the buffer is worth the copy, as it brings the frames behind
// in the same syscall.
const directRead = 16 << 10

// readBody fills dst as io.ReadFull would from r, but once r's buffer is
// empty and directRead bytes or more remain, reads them from src, the
// reader beneath r (nil: none).
func readBody(r *bufio.Reader, src io.Reader, dst []byte) (int, error) {
	n := 0
	for n < len(dst) {
		var k int
		var err error
		if src != nil && r.Buffered() == 0 && len(dst)-n >= directRead {
			k, err = src.Read(dst[n:])
		} else {
			k, err = r.Read(dst[n:])
		}
		n += k
		if err != nil && n < len(dst) {
			return n, err
		}
	}
	return n, nil
}

// unexpected turns a clean EOF in the middle of a frame into the error it is.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// appendFrameHeader appends the flags and size of a frame to dst.
func appendFrameHeader(dst []byte, flags byte, size int) []byte {
	if size > 255 {
		dst = append(dst, flags|flagLong)
		return binary.BigEndian.AppendUint64(dst, uint64(size))
	}
	return append(dst, flags, byte(size))
}

// appendCommand appends a whole command frame: name length, name, data.
func appendCommand(dst []byte, name string, data []byte) []byte {
	dst = appendFrameHeader(dst, flagCommand, 1+len(name)+len(data))
	dst = append(dst, byte(len(name)))
	dst = append(dst, name...)
	return append(dst, data...)
}

// parseCommand splits a command frame body into its name and data.
func parseCommand(body []byte) (name string, data []byte, err error) {
	if len(body) < 1 || int(body[0]) > len(body)-1 || body[0] == 0 {
		return "", nil, protoErr("malformed command frame")
	}
	n := int(body[0])
	return string(body[1 : 1+n]), body[1+n:], nil
}

// frameBlock hands out frame lists carved from one larger allocation, so a
// message costs no allocation of its own for them. A block is freed when
// no message carved from it is referenced any more. With
// Options.ReleaseLists, conn is set and its batch being filled lends the
// lists first (see Conn.batchLists).
type frameBlock struct {
	free [][]byte
	conn *Conn
}

func (b *frameBlock) take(n int) [][]byte {
	if b.conn != nil {
		if f := b.conn.batchLists(n); f != nil {
			return f
		}
	}
	if len(b.free) < n {
		b.free = make([][]byte, max(256, n))
	}
	f := b.free[:n:n]
	b.free = b.free[n:]
	return f
}

// readBuffered decodes a data message that is already complete in r's
// buffer, copying all its frame bodies into one allocation. It reports
// ok=false, consuming nothing, when the message is incomplete, starts with
// a command, or breaks any rule; readFrame then handles it (and its errors)
// one frame at a time.
func readBuffered(r *bufio.Reader, budget int64, maxFrames int, block *frameBlock) (frames [][]byte, ok bool) {
	buf, _ := r.Peek(r.Buffered())
	frames, used := decodeMessage(buf, budget, maxFrames, block)
	if frames == nil {
		return nil, false
	}
	r.Discard(used)
	return frames, true
}

// decodeMessage is readBuffered for bytes in hand: it returns the message
// at the start of buf and how many bytes it took, or nil.
func decodeMessage(buf []byte, budget int64, maxFrames int, block *frameBlock) (frames [][]byte, used int) {
	n, total, _ := scanMessage(buf, budget, maxFrames)
	if n == 0 {
		return nil, 0
	}
	bodies := make([]byte, total)
	frames = block.take(n)
	pos, off := 0, 0
	for i := range frames {
		flags := buf[pos]
		var size int
		if flags&flagLong != 0 {
			size = int(binary.BigEndian.Uint64(buf[pos+1:]))
			pos += 9
		} else {
			size = int(buf[pos+1])
			pos += 2
		}
		frames[i] = bodies[off : off+size : off+size]
		copy(frames[i], buf[pos:pos+size])
		pos += size
		off += size
	}
	return frames, pos
}

// scanMessage checks that a whole data message within the limits starts
// buf, and returns how many frames it has, the bytes of their bodies and
// its length; n is 0 if there is none.
func scanMessage(buf []byte, budget int64, maxFrames int) (n, total, used int) {
	pos := 0
	for {
		if pos >= len(buf) {
			return 0, 0, 0
		}
		flags := buf[pos]
		if flags&^(flagMore|flagLong) != 0 {
			return 0, 0, 0
		}
		var size uint64
		hdr := 2
		if flags&flagLong != 0 {
			hdr = 9
			if pos+hdr > len(buf) {
				return 0, 0, 0
			}
			size = binary.BigEndian.Uint64(buf[pos+1:])
		} else if pos+1 < len(buf) {
			size = uint64(buf[pos+1])
		} else {
			return 0, 0, 0 // the size byte has not arrived
		}
		if size > uint64(budget) || uint64(len(buf)-pos-hdr) < size {
			return 0, 0, 0
		}
		pos += hdr + int(size)
		total += int(size)
		n++
		budget -= int64(size) + perFrameCost
		if flags&flagMore == 0 {
			return n, total, pos
		}
		if budget < 0 || n >= maxFrames {
			return 0, 0, 0
		}
	}
}

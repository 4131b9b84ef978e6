package zmtp

import (
	"bytes"
	"testing"
)

// FuzzDecodeMessage: the in-buffer decoder (readBuffered, and the reader
// that delivers from inside its wait) agrees with reading the same bytes
// frame by frame: a message it returns is the next message readFrame
// reads, over exactly the bytes it says it used, within the budget and
// the frame limit; scanMessage announces the same frames and bytes.
func FuzzDecodeMessage(f *testing.F) {
	f.Add(encodeMessage([]byte("a"), []byte("bc")), uint32(1<<20), uint8(8))
	f.Add(append(encodeMessage([]byte("one")), encodeMessage([]byte("two"))...), uint32(1<<20), uint8(8))
	f.Add(encodeMessage([]byte("a"), nil, []byte("c"))[:5], uint32(1<<20), uint8(8))
	f.Add(append(encodeMessage(bytes.Repeat([]byte("x"), 300)), 0), uint32(100), uint8(8))
	f.Add([]byte{flagCommand, 5, 4, 'P', 'I', 'N', 'G'}, uint32(64), uint8(8))
	f.Add(encodeMessage([]byte("a"), []byte("b"), []byte("c")), uint32(1<<20), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, budget uint32, maxFrames uint8) {
		// At least one frame: Options always allow one (withDefaults).
		b, mf := int64(budget%(1<<22)), int(maxFrames)%64+1
		var block frameBlock
		frames, used := decodeMessage(data, b, mf, &block)
		n, total, scanned := scanMessage(data, b, mf)
		if frames == nil {
			if used != 0 || n != 0 {
				t.Fatalf("no message, but used %d, scanned %d frames", used, n)
			}
			return
		}
		size := 0
		for _, fr := range frames {
			size += len(fr)
		}
		if n != len(frames) || total != size || scanned != used || used > len(data) {
			t.Fatalf("scan says %d frames, %d bytes, %d used; decode gave %d frames, %d bytes, %d used", n, total, scanned, len(frames), size, used)
		}
		if len(frames) > mf {
			t.Fatalf("%d frames over the limit %d", len(frames), mf)
		}
		r := reader(data[:used])
		for i, want := range frames {
			flags, body, err := readFrame(r, b)
			if err != nil || flags&flagCommand != 0 || !bytes.Equal(body, want) {
				t.Fatalf("frame %d: readFrame gave %#x %q %v, decode %q", i, flags, body, err, want)
			}
			if more := flags&flagMore != 0; more != (i < len(frames)-1) {
				t.Fatalf("frame %d: MORE %v", i, more)
			}
			b -= int64(len(body)) + perFrameCost
		}
		if r.Buffered() != 0 {
			t.Fatalf("%d bytes of the message left unread", r.Buffered())
		}
	})
}

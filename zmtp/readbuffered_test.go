package zmtp

import (
	"bufio"
	"bytes"
	"testing"
)

// readSlow decodes one data message frame by frame, the reference for
// readBuffered.
func readSlow(in []byte, budget int64) ([][]byte, bool) {
	r := bufio.NewReaderSize(bytes.NewReader(in), len(in)+16)
	var frames [][]byte
	for {
		flags, body, err := readFrame(r, budget)
		if err != nil || flags&flagCommand != 0 {
			return nil, false
		}
		budget -= int64(len(body)) + perFrameCost
		frames = append(frames, body)
		if flags&flagMore == 0 {
			return frames, true
		}
		if budget < 0 {
			return nil, false
		}
	}
}

// FuzzReadBuffered checks the one-piece decoder against frame-by-frame
// decoding: whatever it accepts must be exactly what the slow path reads,
// and it must consume exactly that message.
func FuzzReadBuffered(f *testing.F) {
	f.Add([]byte{flagMore, 3, 'a', 'b', 'c', 0}, int64(1000))
	f.Add([]byte{flagMore, 5, 'W', 'R', 'I', 'T', 'E', flagMore, 1, 'p', 0, 2, 'h', 'i'}, int64(1000))
	f.Add([]byte{flagLong, 0, 0, 0, 0, 0, 0, 0, 3, 'x', 'y', 'z'}, int64(1000))
	f.Add([]byte{flagMore, 2, 'a', 'b', 0, 1, 'c'}, int64(40))
	f.Add([]byte{flagCommand, 5, 4, 'P', 'I', 'N', 'G'}, int64(1000))
	f.Fuzz(func(t *testing.T, in []byte, budget int64) {
		if budget < 0 {
			budget = -budget
		}
		r := bufio.NewReaderSize(bytes.NewReader(in), len(in)+16)
		r.Peek(len(in))
		var block frameBlock
		got, ok := readBuffered(r, budget, 1<<30, &block)
		if !ok {
			if r.Buffered() != len(in) {
				t.Fatalf("refused but consumed %d bytes", len(in)-r.Buffered())
			}
			return
		}
		want, wok := readSlow(in, budget)
		if !wok || len(got) != len(want) {
			t.Fatalf("fast path read %q, slow path %q (ok %v)", got, want, wok)
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("frame %d: fast %q slow %q", i, got[i], want[i])
			}
		}
		rest, _ := readSlowConsumed(in, budget)
		if r.Buffered() != len(in)-rest {
			t.Fatalf("fast path left %d bytes, slow path %d", r.Buffered(), len(in)-rest)
		}
	})
}

// readSlowConsumed reports how many bytes frame-by-frame decoding of one
// message consumes.
func readSlowConsumed(in []byte, budget int64) (int, bool) {
	br := bytes.NewReader(in)
	r := bufio.NewReaderSize(br, 16)
	for {
		flags, body, err := readFrame(r, budget)
		if err != nil {
			return 0, false
		}
		budget -= int64(len(body)) + perFrameCost
		if flags&flagMore == 0 {
			return len(in) - br.Len() - r.Buffered(), true
		}
	}
}

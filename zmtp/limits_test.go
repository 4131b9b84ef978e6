package zmtp

import (
	"errors"
	"testing"
)

// A message of more than MaxFrames frames disconnects its peer (each
// frame costs memory whatever its size); one of exactly MaxFrames passes,
// whether it is decoded in one piece or frame by frame.
func TestMaxFrames(t *testing.T) {
	ts := startServer(t, abstractEndpoint(t), Options{MaxFrames: 100}, nil)
	p := rawDial(t, ts.endpoint())
	p.handshake(1, "DEALER")
	ts.next(Connected)
	frames := make([][]byte, 100)
	for i := range frames {
		frames[i] = []byte{}
	}
	if err := p.send(frames...); err != nil {
		t.Fatal(err)
	}
	got, _, err := p.recv()
	if err != nil || len(got) != 100 {
		t.Fatalf("echo of 100 frames: %d frames, %v", len(got), err)
	}
	if err := p.send(append(frames, []byte{})...); err != nil {
		t.Fatal(err)
	}
	if ev := ts.next(Disconnected); !errors.Is(ev.Err, ErrTooLarge) {
		t.Fatalf("101 frames: Disconnected with %v, want ErrTooLarge", ev.Err)
	}
}

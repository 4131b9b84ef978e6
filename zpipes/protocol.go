// Package zpipes is the broker side of the zpipes service: named pipes of
// binary chunks between processes, spoken over ZeroMQ (see README.md for
// the wire protocol and the guarantees).
package zpipes

import "fmt"

// Endpoint returns the endpoint of the broker named name.
func Endpoint(name string) string { return "ipc://@/zpipes/" + name }

// MaxPipeName is the longest pipe name accepted, in bytes.
const MaxPipeName = 255

// Command words and reply frames, byte-exact from the seed protocol.
const (
	CmdOpen  = "OPEN"
	CmdClose = "CLOSE"
	CmdRead  = "READ"
	CmdWrite = "WRITE"
	ReplyOK  = "OK"
	// ReplyError starts the two-frame reply to an invalid command; the
	// second frame is a human-readable reason. Valid replies are always
	// one frame, so the frame count tells them apart.
	ReplyError = "ERROR"
)

type verb uint8

const (
	verbOpen verb = iota + 1
	verbClose
	verbRead
	verbWrite
)

// request is a parsed command. Its slices alias the received frames.
type request struct {
	verb  verb
	pipe  []byte
	chunk []byte
}

// parseRequest checks a command (envelope already removed) and returns it,
// or the reason it is invalid.
func parseRequest(frames [][]byte) (request, string) {
	if len(frames) == 0 || len(frames[0]) == 0 {
		return request{}, "empty command"
	}
	var r request
	want := 2
	switch string(frames[0]) {
	case CmdOpen:
		r.verb = verbOpen
	case CmdClose:
		r.verb = verbClose
	case CmdRead:
		r.verb = verbRead
	case CmdWrite:
		r.verb, want = verbWrite, 3
	default:
		return request{}, fmt.Sprintf("unknown command %.32q (commands are OPEN, CLOSE, READ, WRITE)", frames[0])
	}
	switch {
	case len(frames) < 2 || len(frames[1]) == 0:
		return request{}, "missing pipe name"
	case len(frames[1]) > MaxPipeName:
		return request{}, fmt.Sprintf("pipe name longer than %d bytes", MaxPipeName)
	case len(frames) < want:
		return request{}, "WRITE needs a chunk frame"
	case len(frames) > want:
		return request{}, fmt.Sprintf("%s takes %d frames, got %d", frames[0], want, len(frames))
	}
	r.pipe = frames[1]
	if r.verb == verbWrite {
		r.chunk = frames[2]
	}
	return r, ""
}

// splitEnvelope separates the REQ-style envelope from the command. REQ
// peers always send one (addresses ending in an empty delimiter); other
// peers may send a lone empty delimiter first, which no valid command
// starts with. The envelope is echoed back on the reply.
func splitEnvelope(frames [][]byte, fromREQ bool) (env, body [][]byte) {
	if fromREQ {
		for i, f := range frames {
			if len(f) == 0 {
				return frames[:i+1], frames[i+1:]
			}
		}
		return nil, frames
	}
	if len(frames) > 0 && len(frames[0]) == 0 {
		return frames[:1], frames[1:]
	}
	return nil, frames
}

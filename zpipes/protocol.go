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
	// CmdAck and the OPEN flag ArgAck are the acknowledgement extension
	// (docs/zpipes.md): OPEN / pipe / ACK opens the pipe for an
	// acknowledging reader, ACK / pipe / count acknowledges its oldest
	// count unacknowledged chunks.
	CmdAck  = "ACK"
	ArgAck  = "ACK"
	ReplyOK = "OK"
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
	verbAck
)

// request is a parsed command. Its slices alias the received frames.
type request struct {
	verb  verb
	pipe  []byte
	chunk []byte
	ack   bool // OPEN / pipe / ACK
	count int  // ACK's count
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
	case CmdAck:
		r.verb, want = verbAck, 3
	default:
		return request{}, fmt.Sprintf("unknown command %.32q (commands are OPEN, CLOSE, READ, WRITE, ACK)", frames[0])
	}
	if r.verb == verbOpen && len(frames) == 3 && len(frames[1]) > 0 {
		// The extension's third frame; any other stays an extra frame.
		if string(frames[2]) != ArgAck {
			return request{}, fmt.Sprintf("OPEN's third frame must be %s, got %.32q", ArgAck, frames[2])
		}
		r.ack, want = true, 3
	}
	switch {
	case len(frames) < 2 || len(frames[1]) == 0:
		return request{}, "missing pipe name"
	case len(frames[1]) > MaxPipeName:
		return request{}, fmt.Sprintf("pipe name longer than %d bytes", MaxPipeName)
	case len(frames) < want && r.verb == verbAck:
		return request{}, "ACK needs a count frame"
	case len(frames) < want:
		return request{}, "WRITE needs a chunk frame"
	case len(frames) > want:
		return request{}, fmt.Sprintf("%s takes %d frames, got %d", frames[0], want, len(frames))
	}
	r.pipe = frames[1]
	switch r.verb {
	case verbWrite:
		r.chunk = frames[2]
	case verbAck:
		n, ok := parseCount(frames[2])
		if !ok {
			return request{}, fmt.Sprintf("ACK count must be a decimal number from 1 to %d, got %.32q", maxCount, frames[2])
		}
		r.count = n
	}
	return r, ""
}

// maxCount is the largest count ACK accepts (nine digits): more than any
// reader may hold.
const (
	maxCount     = 999_999_999
	maxAckDigits = 9
)

// parseCount parses ACK's count: ASCII digits only (no sign, no spaces),
// at least 1, at most maxCount.
func parseCount(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > maxAckDigits {
		return 0, false
	}
	n := 0
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int(d-'0')
	}
	return n, n >= 1
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

package majordomo

import (
	"github.com/zbroker/zbroker/internal/deque"
	"github.com/zbroker/zbroker/zmtp"
)

// Reusing requests. A request's struct, with the frame lists of its
// REQUEST and its final reply carved from it, is the broker's one
// allocation per request: about 500 of the 1,800 bytes that a request
// cost the whole in-process benchmark (client, broker, workers), and the
// garbage collector's work grows with the bytes allocated. So once a
// request is answered its struct is kept and reused for a later request,
// but only when the transport is done with what was carved from it: its
// REQUEST (whose address frame is the struct's addr) and its final reply
// must be written in full (zmtp.Conn.Written, compared with the number
// of the message among those sent to that peer) or their connection
// gone. Only the common case is reused: one REQUEST sent (one given to a
// worker that was then dropped may still be queued to it), small frames
// (a spare keeps the frames it points to alive until it is reused), a
// final reply made. Everything else is left to the collector, which is
// always safe.

const (
	// spareMax bounds the answered requests kept for reuse. They are
	// taken in the order they were answered; a spare whose reply is
	// still queued (a client that does not read) stops reuse until it
	// is written or dropped, as the oldest, once spareMax wait.
	spareMax = 256
	// spareFrames bounds the bytes of the request's and of the reply's
	// frames for the struct to be kept: spares keep at most 2 ×
	// spareMax × spareFrames of frames alive (2 MiB).
	spareFrames = 4 << 10
)

// newRequest returns the oldest spare if the transport is done with it,
// else a new request. A spare holds its last request: the caller
// overwrites it whole.
func (s *Server) newRequest() *request {
	if s.spares.Len() > 0 {
		if r := s.spares.At(0); r.worker.written(r.wseq) && r.client.written(r.cseq) {
			return s.spares.PopFront()
		}
	}
	return new(request)
}

// retire keeps r, whose final reply has just been sent (or dropped with
// its client), for reuse if it is a common one (see above). Nothing else
// may refer to r afterwards.
func (s *Server) retire(r *request) {
	if r.sends != 1 || r.size-256 > spareFrames {
		return
	}
	if framesLen(r.reply) > spareFrames {
		return
	}
	r.sends = 0 // retired once only
	if s.spares.Len() >= spareMax {
		s.spares.PopFront()
	}
	s.spares.PushBack(r)
}

// sentLists reuses the frame lists of the messages a client sends on its
// connection (from one goroutine) once the transport has written them:
// zmtp.Conn.Written against the count of messages sent. Until then only
// the transport holds them, so a client keeping requests in flight needs
// about as many lists as it has requests unwritten, not one per request.
type sentLists struct {
	sent  uint64                // messages sent on the connection
	lists deque.Deque[sentList] // of take's lists sent, oldest first
	block listBlock
}

type sentList struct {
	seq  uint64 // its number among the messages sent
	list [][]byte
}

// sentListsMax bounds the lists kept: a client that sends more without
// the transport writing them gets new ones. A kept list keeps the frames
// it points to alive until it is reused, so only the lists of messages
// of sentListBytes or less are kept: 1 MiB of frames at most.
const (
	sentListsMax  = 512
	sentListBytes = 2 << 10
)

// take returns an empty list with room for n frames, for a message to be
// sent on conn and passed to note.
func (l *sentLists) take(conn *zmtp.Conn, n int) [][]byte {
	if l.lists.Len() > 0 && l.lists.At(0).seq <= conn.Written() {
		if s := l.lists.PopFront(); cap(s.list) >= n {
			return s.list[:0]
		}
	}
	return l.block.take(n)
}

// note counts a message sent on the connection; list, if not nil, is
// the message's list from take, reused once the message is written.
func (l *sentLists) note(list [][]byte) {
	l.sent++
	if list == nil || l.lists.Len() >= sentListsMax {
		return
	}
	if framesLen(list) <= sentListBytes {
		l.lists.PushBack(sentList{l.sent, list})
	}
}

// reset starts over for a new connection. The old one's lists are
// dropped: its writer may still hold them.
func (l *sentLists) reset() {
	l.sent = 0
	for l.lists.Len() > 0 {
		l.lists.PopFront()
	}
}

package zmtp

import "errors"

// Skipping the read that finds a socket empty (issue 14: 1.2 such reads
// per Majordomo request, about 0.6 µs each). A reader that has taken
// everything a TCP peer sent may wait for the next readiness notice
// instead of reading again, if two things hold:
//   - no FIN waits behind the data: a read stops short of it, and its
//     notice came with the data's. TCP_INQ (Linux 4.18) says, with each
//     recvmsg, how many bytes are still queued, and 1 if only the FIN is;
//   - the reader stays inside one RawConn.Read: entering it clears Go's
//     readiness flag, and a notice that came since the last read would
//     be lost.
// So on TCP, readInto delivers the messages of a read that emptied the
// socket from inside RawConn.Read (deliverInPlace) and waits there.

// inPlace is what deliverInPlace did with what readInto read.
type inPlace uint8

const (
	inPlaceNo        inPlace = iota // nothing: readSmall returns the bytes
	inPlaceWait                     // delivered them; wait for more there
	inPlaceDelivered                // delivered or kept them: readSmall returns errDelivered
	inPlaceClosed                   // delivered some, but nobody takes events any more
)

// errDelivered tells readLoop that readSmall has delivered (or kept in
// src.pending) what it read: nothing is to be read now.
var errDelivered = errors.New("zmtp: delivered by the reader's wait")

// deliverInPlace delivers the messages in the small array, read by
// readInto from a socket it emptied, and says whether to wait for the
// next readiness notice there. It does not when the messages are not all
// whole data messages (readMessage takes them, and their errors, as
// usual), when deadlines are to be set between messages (idle timeout,
// heartbeats, CURVE: readMessage's), or when the connection may not be
// read on (paused, send queue full): what it read then waits in
// src.pending for waitReadable.
func (c *Conn) deliverInPlace() inPlace {
	if c.opener != nil || c.rs.guard.cfg.IdleTimeout > 0 || (c.opts.HeartbeatInterval > 0 && c.minor >= 1) {
		return inPlaceNo
	}
	buf := c.rs.small[:c.rs.smallN]
	count := 0
	for pos := 0; pos < len(buf); count++ {
		n, _, used := scanMessage(buf[pos:], c.opts.MaxMessageSize, c.opts.MaxFrames)
		if n == 0 {
			return inPlaceNo
		}
		pos += used
	}
	if room, blocked := c.room(); blocked || count > room {
		c.rs.src.pending = buf
		return inPlaceDelivered
	}
	for pos := 0; pos < len(buf); {
		msg, used := decodeMessage(buf[pos:], c.opts.MaxMessageSize, c.opts.MaxFrames, &c.block)
		c.add(Event{Type: Message, Conn: c, Frames: msg})
		pos += used
	}
	if !c.flush() {
		return inPlaceClosed
	}
	if _, blocked := c.room(); blocked {
		return inPlaceDelivered
	}
	return inPlaceWait
}

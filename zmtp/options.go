package zmtp

import (
	"log/slog"
	"time"
)

// Options configure a listening Socket or a dialed Conn. The zero value of
// each field means its default.
type Options struct {
	// SocketType is our ZMTP socket type, e.g. "ROUTER" or "DEALER".
	SocketType string
	// Identity is announced in READY (ROUTER peers use it for routing).
	Identity []byte
	// MaxMessageSize caps the total body bytes of one incoming message;
	// a peer exceeding it is disconnected. Default 256 MiB.
	MaxMessageSize int64
	// MaxFrames caps the frames of one incoming message; a peer sending
	// more is disconnected. Default 1024.
	MaxFrames int
	// SendQueueMessages and SendQueueBytes bound each accepted
	// connection's queue of outgoing messages. Past either bound the
	// connection stops reading from its peer until the queue drains: a
	// peer that does not read its replies stops being served, and nobody
	// else waits. Dialed connections never stop reading on this account
	// (their replies are what drains the application's queue). Defaults
	// 1000 messages and 64 MiB.
	SendQueueMessages int
	SendQueueBytes    int64
	// HeartbeatInterval, if set, makes us PING ZMTP 3.1 peers when idle and
	// drop them when nothing arrives for HeartbeatTimeout (default 3
	// intervals). PINGs from peers are always answered.
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
	// HandshakeTimeout bounds greeting and READY exchange. Default 10s.
	HandshakeTimeout time.Duration
	// EventBuffer is the capacity of a Socket's event channel, in batches
	// (see Batch). Default 64.
	EventBuffer int
	// Curve, if set, makes every connection use the CURVE mechanism
	// (encrypted and authenticated, curve.go) instead of NULL; a peer
	// offering the other mechanism is refused.
	Curve *CurveOptions
	// Logger receives connection-level logs. Default slog.Default().
	Logger *slog.Logger
	// Guard admits the peers of a listening Socket (see Access). Share
	// one between sockets to make its limits common to them. Default: a
	// Guard of the socket's own admitting only our uid and root on ipc.
	Guard *Guard
	// BrokerUID is the uid a dialed ipc endpoint must be served by (root
	// is always accepted); Dial refuses any other before sending a byte.
	// Default (0): our own effective uid.
	BrokerUID int
	// ReleaseLists promises that the receiver keeps no message's frame
	// list (Event.Frames, or what Recv returns: the list, not the
	// frames, which stay the receiver's) once it has released the
	// message's batch, or called Recv again: nor does it pass the list
	// to Send. The lists are then reused with their batch instead of
	// being garbage: a Majordomo request's four messages have 20
	// frames, 480 bytes of lists.
	ReleaseLists bool
}

func (o Options) withDefaults() Options {
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = 256 << 20
	}
	if o.MaxFrames <= 0 {
		o.MaxFrames = 1024
	}
	if o.SendQueueMessages <= 0 {
		o.SendQueueMessages = 1000
	}
	if o.SendQueueBytes <= 0 {
		o.SendQueueBytes = 64 << 20
	}
	if o.HeartbeatInterval > 0 && o.HeartbeatTimeout <= 0 {
		o.HeartbeatTimeout = 3 * o.HeartbeatInterval
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.EventBuffer <= 0 {
		o.EventBuffer = 64
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

package majordomo

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
)

// Endpoint returns the endpoint of the Majordomo broker named name.
func Endpoint(name string) string { return "ipc://@/majordomo/" + name }

// Version is an MDP protocol version: V1 is MDP/0.1 (ZeroMQ RFC 7), V2 is
// MDP/0.2 (ZeroMQ RFC 18).
type Version int

const (
	V1 Version = 1
	V2 Version = 2
)

func (v Version) String() string {
	switch v {
	case V1:
		return "MDP/0.1"
	case V2:
		return "MDP/0.2"
	}
	return fmt.Sprintf("MDP/invalid(%d)", int(v))
}

func (v Version) valid() bool { return v == V1 || v == V2 }

// Protocol headers: the first frame of every MDP command (after the
// optional envelope).
const (
	HeaderClientV1 = "MDPC01"
	HeaderWorkerV1 = "MDPW01"
	HeaderClientV2 = "MDPC02"
	HeaderWorkerV2 = "MDPW02"
)

// Command codes, one-byte frames. MDP/0.1 clients have no command frame.
const (
	// MDP/0.2 client commands.
	clientRequest byte = 0x01
	clientPartial byte = 0x02
	clientFinal   byte = 0x03

	// MDP/0.1 worker commands.
	w1Ready      byte = 0x01
	w1Request    byte = 0x02
	w1Reply      byte = 0x03
	w1Heartbeat  byte = 0x04
	w1Disconnect byte = 0x05

	// MDP/0.2 worker commands.
	w2Ready      byte = 0x01
	w2Request    byte = 0x02
	w2Partial    byte = 0x03
	w2Final      byte = 0x04
	w2Heartbeat  byte = 0x05
	w2Disconnect byte = 0x06
)

// MMI (ZeroMQ RFC 8) and the failure reply.
const (
	// MMIPrefix starts every service the broker answers itself.
	MMIPrefix = "mmi."
	// MMIService answers "200" if the service named by the first body
	// frame has at least one worker, else "404".
	MMIService = "mmi.service"
	// MMIWorkers answers how many workers the service named by the first
	// body frame has, in decimal ("0", "3"). A zbroker extension.
	MMIWorkers = "mmi.workers"
	// MMIFailures with body "on" asks the broker for failure replies
	// (ErrorService) on this connection, from the next request on; "off"
	// stops them. It answers "200" ("400" for another body). Without it a
	// request the broker cannot get a reply for gets none, as RFC 7 and
	// 18 define. A zbroker extension.
	MMIFailures = "mmi.failures"
	// ErrorService is the service frame of a failure reply: the broker
	// could not get a reply for the request. No worker can reply under
	// this name (workers may not register mmi.* services), so a client
	// can always tell a failure from a reply. The body is three frames:
	// code, requested service, human-readable reason. See doc.go.
	ErrorService = "mmi.error"
)

// Failure codes (first body frame of an ErrorService reply).
const (
	// CodeBadRequest: the request was malformed (e.g. no body frame).
	CodeBadRequest = "400"
	// CodeWorkerFailed: the workers given the request died or were
	// expired (MaxAttempts times), or one died after streaming PARTIALs.
	CodeWorkerFailed = "502"
	// CodeQueueFull: the service's queue of waiting requests is full.
	CodeQueueFull = "503"
	// CodeTimeout: no worker took the request within RequestTimeout.
	CodeTimeout = "504"
)

// maxEnvelope bounds the routing frames (REQ envelopes through proxies)
// accepted before the protocol header.
const maxEnvelope = 16

// kind is what a parsed message asks for, across both versions.
type kind uint8

const (
	kRequest       kind = iota + 1 // client → broker
	kReady                         // worker → broker
	kReply                         // worker → broker: 0.1 REPLY or 0.2 FINAL
	kPartial                       // worker → broker: 0.2 PARTIAL
	kHeartbeat                     // worker ↔ broker
	kDisconnect                    // worker ↔ broker
	kWorkerRequest                 // broker → worker
	kFinal                         // broker → client: 0.1 REPLY or 0.2 FINAL
	kClientPartial                 // broker → client: 0.2 PARTIAL
)

var kindNames = [...]string{"", "REQUEST", "READY", "REPLY", "PARTIAL", "HEARTBEAT", "DISCONNECT", "REQUEST", "REPLY", "PARTIAL"}

func (k kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "?"
}

// message is one parsed MDP command. Its slices alias the frames it was
// parsed from.
type message struct {
	env     [][]byte // routing frames before the header, ending in an empty frame
	client  bool     // MDP/Client rather than MDP/Worker
	version Version
	kind    kind
	service []byte // kRequest, kReady, kFinal, kClientPartial
	addr    []byte // kReply, kPartial, kWorkerRequest
	body    [][]byte
}

// parseError says why a message is not valid MDP. A client request whose
// header and service were readable is replyable: the broker answers it
// with a failure reply instead of dropping it.
type parseError struct {
	reason    string
	replyable bool
}

func (e *parseError) Error() string { return e.reason }

func perr(format string, args ...any) *parseError {
	return &parseError{reason: fmt.Sprintf(format, args...)}
}

// splitHeader finds the protocol header: either the first frame or the
// frame after the first empty frame (the envelope delimiter, which 0.1
// requires and REQ sockets always add). It returns the envelope (nil or
// ending in the empty frame), the header and the frames after it. The
// header aliases its frame: a string would cost an allocation per message.
func splitHeader(frames [][]byte) (env [][]byte, header []byte, rest [][]byte, err *parseError) {
	if len(frames) == 0 {
		return nil, nil, nil, perr("empty message")
	}
	if isHeader(frames[0]) {
		return nil, frames[0], frames[1:], nil
	}
	for i, f := range frames {
		if i >= maxEnvelope {
			break
		}
		if len(f) == 0 {
			if i+1 < len(frames) && isHeader(frames[i+1]) {
				return frames[: i+1 : i+1], frames[i+1], frames[i+2:], nil
			}
			break
		}
	}
	return nil, nil, nil, perr("no MDP header (want MDPC01, MDPC02, MDPW01 or MDPW02, got %.16q)", frames[0])
}

func isHeader(f []byte) bool {
	if len(f) != 6 || f[0] != 'M' || f[1] != 'D' || f[2] != 'P' {
		return false
	}
	switch string(f) {
	case HeaderClientV1, HeaderClientV2, HeaderWorkerV1, HeaderWorkerV2:
		return true
	}
	return false
}

func command(f []byte) (byte, bool) {
	if len(f) != 1 {
		return 0, false
	}
	return f[0], true
}

// parseInbound parses a message a peer sent to the broker.
func parseInbound(frames [][]byte) (message, *parseError) {
	env, header, rest, err := splitHeader(frames)
	if err != nil {
		return message{}, err
	}
	m := message{env: env}
	switch string(header) {
	case HeaderClientV1:
		m.client, m.version, m.kind = true, V1, kRequest
		return m, m.clientBody(rest)
	case HeaderClientV2:
		m.client, m.version = true, V2
		if len(rest) == 0 {
			return m, perr("MDPC02 without a command frame")
		}
		c, ok := command(rest[0])
		if !ok || c != clientRequest {
			return m, perr("MDPC02 command %.8q from a client (only REQUEST 0x01 is valid)", rest[0])
		}
		m.kind = kRequest
		return m, m.clientBody(rest[1:])
	case HeaderWorkerV1:
		m.version = V1
	case HeaderWorkerV2:
		m.version = V2
	}
	if len(rest) == 0 {
		return m, perr("%s without a command frame", header)
	}
	c, ok := command(rest[0])
	if !ok {
		return m, perr("%s command frame of %d bytes", header, len(rest[0]))
	}
	rest = rest[1:]
	switch {
	case c == w1Ready: // same code in both versions
		m.kind = kReady
		if len(rest) != 1 || len(rest[0]) == 0 {
			return m, perr("READY needs exactly one non-empty service frame")
		}
		m.service = rest[0]
	case m.version == V1 && c == w1Reply, m.version == V2 && (c == w2Final || c == w2Partial):
		m.kind = kReply
		if m.version == V2 && c == w2Partial {
			m.kind = kPartial
		}
		if len(rest) < 3 || len(rest[1]) != 0 {
			return m, perr("%s needs client address, empty frame and at least one body frame", m.kind)
		}
		m.addr, m.body = rest[0], rest[2:]
	case m.version == V1 && c == w1Heartbeat, m.version == V2 && c == w2Heartbeat:
		m.kind = kHeartbeat
	case m.version == V1 && c == w1Disconnect, m.version == V2 && c == w2Disconnect:
		m.kind = kDisconnect
	case c == w1Request:
		return m, perr("REQUEST is a broker-to-worker command")
	default:
		return m, perr("unknown %s command 0x%02x", header, c)
	}
	return m, nil
}

// clientBody reads service and body of a client request.
func (m *message) clientBody(rest [][]byte) *parseError {
	if len(rest) == 0 || len(rest[0]) == 0 {
		return perr("request without a service name")
	}
	m.service, m.body = rest[0], rest[1:]
	if len(m.body) == 0 {
		return &parseError{reason: "request without a body frame", replyable: true}
	}
	return nil
}

// clientHeader is the header of version v's client sub-protocol.
func clientHeader(v Version) []byte {
	if v == V2 {
		return hdrC2
	}
	return hdrC1
}

func workerHeader(v Version) []byte {
	if v == V2 {
		return hdrW2
	}
	return hdrW1
}

var (
	hdrC1 = []byte(HeaderClientV1)
	hdrC2 = []byte(HeaderClientV2)
	hdrW1 = []byte(HeaderWorkerV1)
	hdrW2 = []byte(HeaderWorkerV2)
	empty = []byte{}
	cmds  = func() (c [7][]byte) {
		for i := range c {
			c[i] = []byte{byte(i)}
		}
		return
	}()
	errServiceFrame = []byte(ErrorService)
)

// cmd returns a shared one-byte command frame (never modified).
func cmd(c byte) []byte { return cmds[c] }

// encodeClientReply builds a broker → client message: a 0.1 REPLY, or a
// 0.2 PARTIAL or FINAL, behind the client's envelope.
func encodeClientReply(v Version, env [][]byte, final bool, service []byte, body [][]byte) [][]byte {
	return appendClientReply(make([][]byte, 0, clientReplyLen(env, body)), v, env, final, service, body)
}

func clientReplyLen(env, body [][]byte) int { return len(env) + 3 + len(body) }

// appendClientReply is encodeClientReply into dst (which it grows if it
// lacks room), for callers that carve lists from a larger allocation.
func appendClientReply(dst [][]byte, v Version, env [][]byte, final bool, service []byte, body [][]byte) [][]byte {
	out := append(dst, env...)
	out = append(out, clientHeader(v))
	if v == V2 {
		if final {
			out = append(out, cmd(clientFinal))
		} else {
			out = append(out, cmd(clientPartial))
		}
	}
	out = append(out, service)
	return append(out, body...)
}

// encodeFailure builds the failure reply for a request (see doc.go).
func encodeFailure(v Version, env [][]byte, code string, service []byte, reason string) [][]byte {
	return encodeClientReply(v, env, true, errServiceFrame, [][]byte{[]byte(code), service, []byte(reason)})
}

// encodeWorkerRequest builds a broker → worker REQUEST.
func encodeWorkerRequest(v Version, env [][]byte, addr []byte, body [][]byte) [][]byte {
	return appendWorkerRequest(make([][]byte, 0, workerRequestLen(env, body)), v, env, addr, body)
}

func workerRequestLen(env, body [][]byte) int { return len(env) + 4 + len(body) }

// appendWorkerRequest is encodeWorkerRequest into dst.
func appendWorkerRequest(dst [][]byte, v Version, env [][]byte, addr []byte, body [][]byte) [][]byte {
	out := append(dst, env...)
	out = append(out, workerHeader(v), cmd(w1Request), addr, empty)
	return append(out, body...)
}

// encodeWorkerCommand builds a body-less worker command (HEARTBEAT,
// DISCONNECT) or READY (with the service frame).
func encodeWorkerCommand(v Version, env [][]byte, k kind, service []byte) [][]byte {
	out := make([][]byte, 0, len(env)+3)
	out = append(out, env...)
	out = append(out, workerHeader(v))
	switch k {
	case kReady:
		return append(out, cmd(w1Ready), service)
	case kHeartbeat:
		if v == V2 {
			return append(out, cmd(w2Heartbeat))
		}
		return append(out, cmd(w1Heartbeat))
	case kDisconnect:
		if v == V2 {
			return append(out, cmd(w2Disconnect))
		}
		return append(out, cmd(w1Disconnect))
	}
	panic("majordomo: encodeWorkerCommand of " + k.String())
}

// encodeWorkerReply builds a worker → broker REPLY (0.1), or PARTIAL or
// FINAL (0.2).
func encodeWorkerReply(v Version, final bool, addr []byte, body [][]byte) [][]byte {
	return appendWorkerReply(make([][]byte, 0, workerReplyLen(body)), v, final, addr, body)
}

func workerReplyLen(body [][]byte) int { return 5 + len(body) }

// appendWorkerReply is encodeWorkerReply into dst.
func appendWorkerReply(dst [][]byte, v Version, final bool, addr []byte, body [][]byte) [][]byte {
	out := dst
	if v == V1 {
		out = append(out, empty, hdrW1, cmd(w1Reply))
	} else if final {
		out = append(out, hdrW2, cmd(w2Final))
	} else {
		out = append(out, hdrW2, cmd(w2Partial))
	}
	out = append(out, addr, empty)
	return append(out, body...)
}

// encodeClientRequest builds a client → broker request. 0.1 requests start
// with the empty frame a REQ socket would add.
func encodeClientRequest(v Version, service string, body [][]byte) [][]byte {
	return encodeClientRequestFrame(v, []byte(service), body)
}

// encodeClientRequestFrame is encodeClientRequest with the service frame
// given (a Client keeps the last one it sent, see Client.serviceFrame).
func encodeClientRequestFrame(v Version, service []byte, body [][]byte) [][]byte {
	return appendClientRequest(make([][]byte, 0, clientRequestLen(body)), v, service, body)
}

func clientRequestLen(body [][]byte) int { return 3 + len(body) }

// appendClientRequest is encodeClientRequestFrame into dst.
func appendClientRequest(dst [][]byte, v Version, service []byte, body [][]byte) [][]byte {
	out := dst
	if v == V1 {
		out = append(out, empty, hdrC1)
	} else {
		out = append(out, hdrC2, cmd(clientRequest))
	}
	out = append(out, service)
	return append(out, body...)
}

// workerHello is the READY a worker sends: 0.1 commands start with an
// empty frame, 0.2 commands do not.
func workerHello(v Version, service string) [][]byte {
	var env [][]byte
	if v == V1 {
		env = [][]byte{empty}
	}
	return encodeWorkerCommand(v, env, kReady, []byte(service))
}

func workerSignal(v Version, k kind) [][]byte {
	var env [][]byte
	if v == V1 {
		env = [][]byte{empty}
	}
	return encodeWorkerCommand(v, env, k, nil)
}

// parseForClient parses a broker → client message of version v: a reply
// (final) or a 0.2 PARTIAL.
func parseForClient(v Version, frames [][]byte) (message, *parseError) {
	env, header, rest, err := splitHeader(frames)
	if err != nil {
		return message{}, err
	}
	m := message{env: env, client: true, version: v, kind: kFinal}
	if !bytes.Equal(header, clientHeader(v)) {
		return m, perr("reply header %s, want %s", header, clientHeader(v))
	}
	if v == V2 {
		if len(rest) == 0 {
			return m, perr("MDPC02 reply without a command frame")
		}
		c, ok := command(rest[0])
		switch {
		case ok && c == clientFinal:
		case ok && c == clientPartial:
			m.kind = kClientPartial
		default:
			return m, perr("MDPC02 reply command %.8q (want PARTIAL 0x02 or FINAL 0x03)", rest[0])
		}
		rest = rest[1:]
	}
	if len(rest) == 0 {
		return m, perr("reply without a service frame")
	}
	m.service, m.body = rest[0], rest[1:]
	return m, nil
}

// parseForWorker parses a broker → worker message of version v.
func parseForWorker(v Version, frames [][]byte) (message, *parseError) {
	env, header, rest, err := splitHeader(frames)
	if err != nil {
		return message{}, err
	}
	m := message{env: env, version: v}
	if !bytes.Equal(header, workerHeader(v)) {
		return m, perr("header %s, want %s", header, workerHeader(v))
	}
	if len(rest) == 0 {
		return m, perr("no command frame")
	}
	c, ok := command(rest[0])
	if !ok {
		return m, perr("command frame of %d bytes", len(rest[0]))
	}
	rest = rest[1:]
	switch {
	case c == w1Request:
		if len(rest) < 2 || len(rest[1]) != 0 {
			return m, perr("REQUEST needs client address and empty frame")
		}
		m.kind, m.addr, m.body = kWorkerRequest, rest[0], rest[2:]
	case v == V1 && c == w1Heartbeat, v == V2 && c == w2Heartbeat:
		m.kind = kHeartbeat
	case v == V1 && c == w1Disconnect, v == V2 && c == w2Disconnect:
		m.kind = kDisconnect
	default:
		return m, perr("unexpected command 0x%02x from broker", c)
	}
	return m, nil
}

// failureOf decodes a failure reply's body into a *ServiceError, or
// returns nil if the reply is not one.
func failureOf(m *message) *ServiceError {
	if m.kind != kFinal || !bytes.Equal(m.service, errServiceFrame) {
		return nil
	}
	e := &ServiceError{}
	if len(m.body) > 0 {
		e.Code = string(m.body[0])
	}
	if len(m.body) > 1 {
		e.Service = string(m.body[1])
	}
	if len(m.body) > 2 {
		e.Reason = string(m.body[2])
	}
	return e
}

// ServiceError is a failure reply from the broker: the request got no
// reply from a worker. Code is one of the Code* constants.
type ServiceError struct {
	Code    string
	Service string
	Reason  string
}

func (e *ServiceError) Error() string {
	return fmt.Sprintf("majordomo: %s: %s %s", e.Service, e.Code, e.Reason)
}

// requestAddr is the client address frame the broker gives a worker: the
// request's id, 8 bytes big-endian. Workers echo it back opaquely.
func requestAddr(id uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), id) }

func isMMI(service []byte) bool {
	return len(service) >= len(MMIPrefix) && string(service[:len(MMIPrefix)]) == MMIPrefix
}

// printable renders a peer-supplied name for logs.
func printable(b []byte) string {
	const max = 64
	s := string(b)
	if len(s) > max {
		s = s[:max] + "..."
	}
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r == 0xfffd }) >= 0 {
		return fmt.Sprintf("%q", s)
	}
	return s
}

package zmtp

import (
	"bufio"
	"errors"
	"net"
)

// A security mechanism (RFC 23, "Authentication and Confidentiality")
// runs the commands between the greetings and the first message. NULL
// exchanges READY commands in clear; CURVE (curve.go) authenticates both
// sides and boxes every frame after the handshake.

// mechResult is what a mechanism's handshake learnt.
type mechResult struct {
	md      metadata
	peerKey *CurveKey    // CURVE: the peer's authenticated long-term key
	sealer  *curveSealer // CURVE: boxes our frames; nil under NULL
	opener  *curveOpener // CURVE: opens the peer's frames; nil under NULL
}

func mechanismName(opts *Options) string {
	if opts.Curve != nil {
		return "CURVE"
	}
	return "NULL"
}

// exchangeCommands runs the mechanism's commands: ours is our READY
// metadata, accept checks the peer's.
func exchangeCommands(nc net.Conn, br *bufio.Reader, opts *Options, asServer bool, ours []byte, accept func(metadata) error) (mechResult, error) {
	if opts.Curve != nil {
		return curveHandshake(nc, br, opts.Curve, asServer, ours, accept)
	}
	var r mechResult
	if _, err := nc.Write(appendCommand(nil, "READY", ours)); err != nil {
		return r, err
	}
	data, err := readCommand(br, "READY")
	if err != nil {
		return r, err
	}
	if r.md, err = parseMetadata(data); err != nil {
		return r, err
	}
	if err = accept(r.md); err != nil {
		nc.Write(errorCommand(reasonOf(err)))
	}
	return r, err
}

// readCommand reads one handshake command, which must be want (an ERROR
// from the peer is reported as its refusal), and returns its data.
func readCommand(br *bufio.Reader, want string) ([]byte, error) {
	flags, body, err := readFrame(br, 64<<10)
	if err != nil {
		return nil, err
	}
	if flags&flagCommand == 0 {
		return nil, protoErr("expected %s, got a message frame", want)
	}
	name, data, err := parseCommand(body)
	if err != nil {
		return nil, err
	}
	if name == "ERROR" {
		return nil, protoErr("peer refused handshake: %q", errorReason(data))
	}
	if name != want {
		return nil, protoErr("expected %s, got %q", want, name)
	}
	return data, nil
}

// errorCommand builds an ERROR command; its reason has a one-byte length.
func errorCommand(reason string) []byte {
	if len(reason) > 255 {
		reason = reason[:255]
	}
	return appendCommand(nil, "ERROR", append([]byte{byte(len(reason))}, reason...))
}

func errorReason(data []byte) string {
	if len(data) > 0 && int(data[0]) <= len(data)-1 {
		return string(data[1 : 1+data[0]])
	}
	return ""
}

func reasonOf(err error) string {
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return pe.Reason
	}
	return err.Error()
}

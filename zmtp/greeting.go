package zmtp

import (
	"bytes"
	"encoding/binary"
	"io"
)

const greetingSize = 64

// greeting builds our 64-byte ZMTP 3.1 greeting offering mechanism mech.
// The as-server byte is informative only: libzmq sends 0 even as a CURVE
// server, so nobody checks it.
func greeting(mech string, asServer bool) []byte {
	g := make([]byte, greetingSize)
	g[0] = 0xFF
	g[9] = 0x7F
	g[10], g[11] = 3, 1
	copy(g[12:32], mech)
	if asServer {
		g[32] = 1
	}
	return g
}

// readGreeting reads and checks the peer's greeting and returns its minor
// version and mechanism. The first 11 bytes are read before the rest so that a pre-3.0
// peer, which waits after its signature, is refused instead of hanging us.
func readGreeting(r io.Reader) (minor byte, mech string, err error) {
	var g [greetingSize]byte
	if _, err = io.ReadFull(r, g[:11]); err != nil {
		return 0, "", unexpected(err)
	}
	if g[0] != 0xFF || g[9]&1 != 1 {
		return 0, "", protoErr("not a ZMTP peer (bad signature)")
	}
	if g[10] < 3 {
		return 0, "", protoErr("ZMTP %d.x peer not supported (need 3.0 or later)", g[10])
	}
	if _, err = io.ReadFull(r, g[11:]); err != nil {
		return 0, "", unexpected(err)
	}
	return checkGreetingTail(g[:])
}

// checkGreetingTail validates a complete greeting after the signature.
func checkGreetingTail(g []byte) (minor byte, mech string, err error) {
	// Whether we speak the mechanism is the handshake's call: it tells
	// the peer with an ERROR.
	mech = string(bytes.TrimRight(g[12:32], "\x00"))
	minor = g[11]
	if g[10] > 3 || minor > 1 {
		minor = 1 // a newer peer speaks down to us
	}
	return minor, mech, nil
}

// metadata is the property list of a READY command.
type metadata map[string][]byte

// appendMetadata encodes properties in the order given.
func appendMetadata(dst []byte, props ...[2]string) []byte {
	for _, p := range props {
		dst = append(dst, byte(len(p[0])))
		dst = append(dst, p[0]...)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(p[1])))
		dst = append(dst, p[1]...)
	}
	return dst
}

// parseMetadata decodes a READY property list. Names are case-insensitive
// per the RFC, so they are stored lower-cased.
func parseMetadata(data []byte) (metadata, error) {
	md := metadata{}
	for len(data) > 0 {
		n := int(data[0])
		if n == 0 || len(data) < 1+n+4 {
			return nil, protoErr("malformed metadata")
		}
		name := asciiLower(data[1 : 1+n])
		data = data[1+n:]
		vlen := binary.BigEndian.Uint32(data)
		data = data[4:]
		if uint64(vlen) > uint64(len(data)) {
			return nil, protoErr("malformed metadata value")
		}
		md[name] = data[:vlen]
		data = data[vlen:]
	}
	return md, nil
}

// asciiLower lower-cases ASCII letters only. Property names are ASCII;
// strings.ToLower would rewrite other bytes (invalid UTF-8 becomes U+FFFD)
// and fold non-ASCII letters into ASCII ones (KELVIN SIGN becomes 'k').
func asciiLower(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return string(out)
}

// compatible lists which peer socket types each socket type accepts
// (RFC 23/ZMTP, "Socket Types"; RFC 28/REQREP, 29/PUBSUB).
var compatible = map[string][]string{
	"REQ":    {"REP", "ROUTER"},
	"REP":    {"REQ", "DEALER"},
	"DEALER": {"REP", "DEALER", "ROUTER"},
	"ROUTER": {"REQ", "DEALER", "ROUTER"},
	"PUB":    {"SUB", "XSUB"},
	"XPUB":   {"SUB", "XSUB"},
	"SUB":    {"PUB", "XPUB"},
	"XSUB":   {"PUB", "XPUB"},
	"PUSH":   {"PULL"},
	"PULL":   {"PUSH"},
	"PAIR":   {"PAIR"},
}

func validSocketType(t string) bool { _, ok := compatible[t]; return ok }

func compatibleTypes(ours, theirs string) bool {
	for _, t := range compatible[ours] {
		if t == theirs {
			return true
		}
	}
	return false
}

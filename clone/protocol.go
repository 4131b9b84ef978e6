// Package clone is zbroker's Clone service: a shared key-value map kept in
// step across clients by the Clustered Hashmap Protocol (ZeroMQ RFC 12/CHP,
// the zguide's "Clone" pattern).
//
// The server binds three sockets:
//
//   - snapshot (ROUTER): a client's DEALER sends ["ICANHAZ?", subtree]; the
//     server answers with one KVSYNC kvmsg per key under subtree, then a
//     KTHXBAI kvmsg carrying the server's current sequence number.
//   - publisher (PUB): every accepted update as a KVPUB kvmsg, and a HUGZ
//     kvmsg every HeartbeatInterval. Subscriptions filter by key prefix.
//   - collector (SUB): clients' PUB sockets send KVSET kvmsgs; the server
//     assigns the next sequence number, stores and republishes them.
//
// A kvmsg is five frames: key, sequence (8 bytes, network order), UUID
// (16 bytes or empty), properties ("name=value\n"...), body. An empty body
// deletes the key; the "ttl" property (seconds) makes a value ephemeral:
// when it expires the server publishes a delete.
package clone

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Command keys of the protocol.
const (
	KeyICANHAZ = "ICANHAZ?"
	KeyKTHXBAI = "KTHXBAI"
	KeyHUGZ    = "HUGZ"
)

// MaxKeySize bounds a key (kvmsg keys are short 0MQ strings).
const MaxKeySize = 255

// Prop is one kvmsg property.
type Prop struct{ Name, Value string }

// KVMsg is one key-value message.
type KVMsg struct {
	Key   string
	Seq   uint64
	UUID  []byte // 16 bytes, or empty
	Props []Prop
	Body  []byte
}

// Prop returns the value of property name and whether it is set.
func (m *KVMsg) Prop(name string) (string, bool) {
	for _, p := range m.Props {
		if p.Name == name {
			return p.Value, true
		}
	}
	return "", false
}

// SetProp sets (replaces) property name.
func (m *KVMsg) SetProp(name, value string) {
	for i := range m.Props {
		if m.Props[i].Name == name {
			m.Props[i].Value = value
			return
		}
	}
	m.Props = append(m.Props, Prop{name, value})
}

// ErrMalformed wraps every decoding error.
var ErrMalformed = errors.New("clone: malformed kvmsg")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Decode parses a five-frame kvmsg. The result copies nothing: its UUID
// and Body alias frames (copy them to keep them past the frames' life).
func Decode(frames [][]byte) (KVMsg, error) {
	var m KVMsg
	if len(frames) != 5 {
		return m, malformed("%d frames, want 5", len(frames))
	}
	if len(frames[0]) == 0 || len(frames[0]) > MaxKeySize {
		return m, malformed("key of %d bytes", len(frames[0]))
	}
	if len(frames[1]) != 8 {
		return m, malformed("sequence of %d bytes, want 8", len(frames[1]))
	}
	if n := len(frames[2]); n != 0 && n != 16 {
		return m, malformed("UUID of %d bytes, want 0 or 16", n)
	}
	props, err := decodeProps(frames[3])
	if err != nil {
		return m, err
	}
	m.Key = string(frames[0])
	m.Seq = binary.BigEndian.Uint64(frames[1])
	m.UUID = frames[2]
	m.Props = props
	m.Body = frames[4]
	return m, nil
}

func decodeProps(b []byte) ([]Prop, error) {
	if len(b) == 0 {
		return nil, nil
	}
	s := string(b)
	if !strings.HasSuffix(s, "\n") {
		s += "\n" // a missing final newline is tolerated
	}
	var props []Prop
	for line := range strings.SplitSeq(strings.TrimSuffix(s, "\n"), "\n") {
		name, value, ok := strings.Cut(line, "=")
		if !ok || name == "" {
			return nil, malformed("property %q is not name=value", line)
		}
		props = append(props, Prop{name, value})
	}
	return props, nil
}

// Encode builds the five frames of m. It fails on what Decode would refuse.
func (m *KVMsg) Encode() ([][]byte, error) {
	if len(m.Key) == 0 || len(m.Key) > MaxKeySize {
		return nil, malformed("key of %d bytes", len(m.Key))
	}
	if n := len(m.UUID); n != 0 && n != 16 {
		return nil, malformed("UUID of %d bytes, want 0 or 16", n)
	}
	props, err := encodeProps(m.Props)
	if err != nil {
		return nil, err
	}
	return [][]byte{[]byte(m.Key), binary.BigEndian.AppendUint64(nil, m.Seq), m.UUID, props, m.Body}, nil
}

func encodeProps(props []Prop) ([]byte, error) {
	var b []byte
	for _, p := range props {
		if p.Name == "" || strings.ContainsAny(p.Name, "=\n") || strings.Contains(p.Value, "\n") {
			return nil, malformed("property %q=%q cannot be encoded", p.Name, p.Value)
		}
		b = append(b, p.Name...)
		b = append(b, '=')
		b = append(b, p.Value...)
		b = append(b, '\n')
	}
	return b, nil
}

// frames builds a kvmsg whose parts are already known to be valid.
func frames(key string, seq uint64, uuid, props, body []byte) [][]byte {
	return [][]byte{[]byte(key), binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq), uuid, props, body}
}

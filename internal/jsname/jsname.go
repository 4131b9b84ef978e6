// Package jsname maps zbroker's names, which may be any bytes, onto the
// narrow alphabets of NATS: subject tokens (pipe names) and KV keys (Clone
// keys). The mapping is reversible and canonical: every byte string has
// exactly one encoding and Decode accepts only encodings, so two names
// never share a subject or a key.
package jsname

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Encode escapes name into letters, digits, '-' and '/' (kept as they are)
// and "_XX" (two upper-case hex digits) for every other byte. The result is
// a valid NATS subject token and a valid KV key (it has no '.', '*', '>',
// white space, and cannot start with the reserved "_kv"); empty names
// encode to "" and callers must refuse them.
func Encode(name []byte) string {
	n := len(name)
	for _, c := range name {
		if !plain(c) {
			n += 2
		}
	}
	out := make([]byte, 0, n)
	for _, c := range name {
		if plain(c) {
			out = append(out, c)
		} else {
			out = append(out, '_', hexDigits[c>>4], hexDigits[c&15])
		}
	}
	return string(out)
}

const hexDigits = "0123456789ABCDEF"

func plain(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '/'
}

// ErrNotEncoded is returned by Decode for strings Encode never produces.
var ErrNotEncoded = errors.New("jsname: not an encoded name")

// Decode reverses Encode.
func Decode(s string) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plain(c) {
			out = append(out, c)
			continue
		}
		if c != '_' || i+2 >= len(s) {
			return nil, fmt.Errorf("%w: %q at %d", ErrNotEncoded, c, i)
		}
		hi, lo := unhex(s[i+1]), unhex(s[i+2])
		b := hi<<4 | lo
		if hi > 15 || lo > 15 || plain(b) {
			return nil, fmt.Errorf("%w: bad escape %q at %d", ErrNotEncoded, s[i:i+3], i)
		}
		out = append(out, b)
		i += 2
	}
	return out, nil
}

// unhex returns the value of an upper-case hex digit, or 16.
func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	return 16
}

// PipeSubject is the subject a pipe's chunks are published on.
func PipeSubject(pipe []byte) string { return "zpipes." + Encode(pipe) }

// PipeStreamPrefix begins the name of every pipe's stream.
const PipeStreamPrefix = "ZPIPE_"

// PipeStream is the name of a pipe's stream. Stream names become file
// names, so a 255-byte pipe name cannot be spelled out in one; the stream
// is named by a hash instead, and its one subject (PipeSubject) carries
// the reversible name: a stream whose subject differs is a hash collision
// and is refused by the caller.
func PipeStream(pipe []byte) string {
	h := sha256.Sum256(pipe)
	return PipeStreamPrefix + hex.EncodeToString(h[:16])
}

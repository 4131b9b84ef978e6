package zmtp

import (
	"encoding/binary"
	"fmt"
)

// Z85 (ZeroMQ RFC 32) is how ZeroMQ writes CURVE keys as text: 4 bytes
// become 5 printable characters, so a 32-byte key is 40 characters.
const z85Alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"

// z85Value maps a character back to its digit; 0xFF marks characters
// outside the alphabet.
var z85Value = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xFF
	}
	for i := 0; i < len(z85Alphabet); i++ {
		t[z85Alphabet[i]] = byte(i)
	}
	return t
}()

// Z85Encode encodes b, whose length must be a multiple of 4.
func Z85Encode(b []byte) (string, error) {
	if len(b)%4 != 0 {
		return "", fmt.Errorf("z85: %d bytes is not a multiple of 4", len(b))
	}
	out := make([]byte, len(b)/4*5)
	for i := 0; i < len(b); i += 4 {
		v := binary.BigEndian.Uint32(b[i:])
		o := out[i/4*5 : i/4*5+5]
		for j := 4; j >= 0; j-- {
			o[j] = z85Alphabet[v%85]
			v /= 85
		}
	}
	return string(out), nil
}

// Z85Decode decodes s, whose length must be a multiple of 5.
func Z85Decode(s string) ([]byte, error) {
	if len(s)%5 != 0 {
		return nil, fmt.Errorf("z85: %d characters is not a multiple of 5", len(s))
	}
	out := make([]byte, 0, len(s)/5*4)
	for i := 0; i < len(s); i += 5 {
		var v uint64
		for j := 0; j < 5; j++ {
			d := z85Value[s[i+j]]
			if d == 0xFF {
				return nil, fmt.Errorf("z85: invalid character %q at %d", s[i+j], i+j)
			}
			v = v*85 + uint64(d)
		}
		if v > 0xFFFFFFFF {
			return nil, fmt.Errorf("z85: group %q at %d overflows 32 bits", s[i:i+5], i)
		}
		out = binary.BigEndian.AppendUint32(out, uint32(v))
	}
	return out, nil
}

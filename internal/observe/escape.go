package observe

import (
	"strings"
	"unicode/utf8"
)

// EscapeName renders a pipe or service name, which is bytes, as text that
// is valid UTF-8 and safe on a terminal: a backslash becomes \\, and each
// byte of invalid UTF-8 or of a control character becomes \xNN. Names
// that need none of this (nearly all) are returned as they are; distinct
// names stay distinct.
func EscapeName(name string) string {
	if utf8.ValidString(name) && !strings.ContainsFunc(name, escaped) {
		return name
	}
	const hex = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < len(name); {
		r, n := utf8.DecodeRuneInString(name[i:])
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == utf8.RuneError && n == 1 || escaped(r):
			for _, c := range []byte(name[i : i+n]) {
				b.WriteString(`\x`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xf])
			}
		default:
			b.WriteString(name[i : i+n])
		}
		i += n
	}
	return b.String()
}

// escaped reports whether a rune is written as \xNN bytes: the C0 and C1
// control characters and DEL.
func escaped(r rune) bool { return r == '\\' || r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 }

package observe

import (
	"strconv"
	"testing"
	"unicode/utf8"
)

func TestEscapeName(t *testing.T) {
	for in, want := range map[string]string{
		"":              "",
		"logs/app-1":    "logs/app-1",
		"café ☕":        "café ☕",
		"a\xffb":        `a\xffb`,
		`back\slash`:    `back\\slash`,
		"line\nbreak":   `line\x0abreak`,
		"\x1b[31mred":   `\x1b[31mred`,
		"c1 \u0085":     `c1 \xc2\x85`,
		"\xc3":          `\xc3`,
		"\xef\xbf\xbd!": "\ufffd!", // a real U+FFFD is valid UTF-8
	} {
		if got := EscapeName(in); got != want {
			t.Errorf("EscapeName(%q) = %q, want %q", in, got, want)
		}
	}
}

// unescape inverts EscapeName, to show that no two names share a rendering.
func unescape(s string) (string, bool) {
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '\\':
			out = append(out, '\\')
			i++
		case i+3 < len(s) && s[i+1] == 'x':
			v, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
			if err != nil {
				return "", false
			}
			out = append(out, byte(v))
			i += 3
		default:
			return "", false
		}
	}
	return string(out), true
}

func FuzzEscapeName(f *testing.F) {
	for _, s := range []string{"pipe", "a\xffb", `x\y`, "\x00\x7f\u0085", "\xe2\x82"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got := EscapeName(name)
		if !utf8.ValidString(got) {
			t.Fatalf("EscapeName(%q) = %q is not UTF-8", name, got)
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
				t.Fatalf("EscapeName(%q) = %q holds control character %U", name, got, r)
			}
		}
		if back, ok := unescape(got); !ok || back != name {
			t.Fatalf("EscapeName(%q) = %q does not decode back (%q, %v)", name, got, back, ok)
		}
	})
}

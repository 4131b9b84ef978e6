package jsname

import (
	"bytes"
	"errors"
	"regexp"
	"testing"
)

// The alphabets NATS accepts: a KV key (nats.go's own check) and a subject
// token without wildcards or separators.
var (
	kvKey        = regexp.MustCompile(`^[-/_=\.a-zA-Z0-9]+$`)
	subjectToken = regexp.MustCompile(`^[^.*>\s]+$`)
)

func TestEncode(t *testing.T) {
	for name, want := range map[string]string{
		"/client/x":  "/client/x",
		"a.b":        "a_2Eb",
		"_kv":        "_5Fkv",
		"*>":         "_2A_3E",
		"\x00\xff ":  "_00_FF_20",
		"Ab-9":       "Ab-9",
		"é":          "_C3_A9",
		"_5F":        "_5F5F",
		"percent%20": "percent_2520",
	} {
		if got := Encode([]byte(name)); got != want {
			t.Errorf("Encode(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, s := range []string{"a.b", "_", "_4", "_4g", "_41", "_2e", "a b", "_zz", "x_"} {
		if _, err := Decode(s); !errors.Is(err, ErrNotEncoded) {
			t.Errorf("Decode(%q): %v, want ErrNotEncoded", s, err)
		}
	}
}

func TestPipeStream(t *testing.T) {
	a, b := PipeStream([]byte("a")), PipeStream([]byte("b"))
	if a == b || len(a) != len("ZPIPE_")+32 || !subjectToken.MatchString(a) {
		t.Fatalf("stream names %q %q", a, b)
	}
	if got := PipeSubject([]byte("x.y")); got != "zpipes.x_2Ey" {
		t.Fatalf("PipeSubject = %q", got)
	}
}

// FuzzRoundTrip: every byte string encodes into both NATS alphabets and
// decodes back; every string Decode accepts is the encoding of its result
// (so the mapping is one to one).
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"", "a", "/client/x", "a.b", "_kv", "\x00\xff", "_41", "é*>"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e := Encode(b)
		if len(b) > 0 && (!kvKey.MatchString(e) || !subjectToken.MatchString(e) || len(e) >= 3 && e[:3] == "_kv") {
			t.Fatalf("Encode(%q) = %q is not a KV key and subject token", b, e)
		}
		d, err := Decode(e)
		if err != nil || !bytes.Equal(d, b) {
			t.Fatalf("Decode(Encode(%q)) = %q, %v", b, d, err)
		}
		if d, err := Decode(string(b)); err == nil && Encode(d) != string(b) {
			t.Fatalf("Decode(%q) = %q accepted a non-canonical form", b, d)
		}
	})
}

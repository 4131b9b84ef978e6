package zpipes

import (
	"bytes"
	"strings"
	"testing"
)

func frames(parts ...string) [][]byte {
	out := make([][]byte, len(parts))
	for i, p := range parts {
		out[i] = []byte(p)
	}
	return out
}

func TestParseRequestValid(t *testing.T) {
	cases := []struct {
		in    [][]byte
		verb  verb
		chunk string
	}{
		{frames("OPEN", "p"), verbOpen, ""},
		{frames("CLOSE", "p"), verbClose, ""},
		{frames("READ", "p"), verbRead, ""},
		{frames("WRITE", "p", "data"), verbWrite, "data"},
		{frames("WRITE", "p", ""), verbWrite, ""},
		{frames("WRITE", "p", "ERROR"), verbWrite, "ERROR"},
		{frames("OPEN", strings.Repeat("n", MaxPipeName)), verbOpen, ""},
	}
	for _, c := range cases {
		r, bad := parseRequest(c.in)
		if bad != "" || r.verb != c.verb || !bytes.Equal(r.pipe, c.in[1]) || string(r.chunk) != c.chunk {
			t.Errorf("parseRequest(%q) = %+v, %q", c.in, r, bad)
		}
	}
}

func TestParseRequestInvalid(t *testing.T) {
	cases := map[string][][]byte{
		"no frames":          nil,
		"empty command":      frames(""),
		"lower case":         frames("open", "p"),
		"unknown":            frames("DELETE", "p"),
		"no name":            frames("OPEN"),
		"empty name":         frames("READ", ""),
		"name too long":      frames("OPEN", strings.Repeat("n", MaxPipeName+1)),
		"write without data": frames("WRITE", "p"),
		"open extra frame":   frames("OPEN", "p", "x"),
		"read extra frame":   frames("READ", "p", ""),
		"write extra frame":  frames("WRITE", "p", "a", "b"),
	}
	for name, in := range cases {
		if r, bad := parseRequest(in); bad == "" {
			t.Errorf("%s: parseRequest(%q) accepted as %+v", name, in, r)
		}
	}
}

func TestSplitEnvelope(t *testing.T) {
	env, body := splitEnvelope(frames("", "OPEN", "p"), false)
	if len(env) != 1 || len(body) != 2 {
		t.Errorf("DEALER with delimiter: env %q body %q", env, body)
	}
	env, body = splitEnvelope(frames("WRITE", "p", ""), false)
	if len(env) != 0 || len(body) != 3 {
		t.Errorf("DEALER empty chunk taken as envelope: env %q body %q", env, body)
	}
	env, body = splitEnvelope(frames("hop", "", "WRITE", "p", ""), true)
	if len(env) != 2 || len(body) != 3 || string(body[0]) != "WRITE" {
		t.Errorf("REQ envelope: env %q body %q", env, body)
	}
}

// FuzzParseRequest feeds arbitrary frame lists (split from one input on a
// separator byte) to the parser: it must never panic, and anything it
// accepts must be a well-formed command.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{"OPEN\x00p", "WRITE\x00p\x00chunk", "READ\x00", "\x00OPEN\x00p", "WRITE\x00p\x00\x00x", "CLOSE"} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, in []byte, fromREQ bool) {
		_, body := splitEnvelope(bytes.Split(in, []byte{0}), fromREQ)
		r, bad := parseRequest(body)
		if bad != "" {
			return
		}
		if len(r.pipe) == 0 || len(r.pipe) > MaxPipeName {
			t.Fatalf("accepted bad pipe name %q", r.pipe)
		}
		want := map[verb]int{verbOpen: 2, verbClose: 2, verbRead: 2, verbWrite: 3}[r.verb]
		if want == 0 || len(body) != want {
			t.Fatalf("accepted %d frames for verb %d", len(body), r.verb)
		}
	})
}

func BenchmarkParseRequest(b *testing.B) {
	msg := frames("WRITE", "pipe", strings.Repeat("x", 64))
	b.ReportAllocs()
	for b.Loop() {
		if _, bad := parseRequest(msg); bad != "" {
			b.Fatal(bad)
		}
	}
}

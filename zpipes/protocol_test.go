package zpipes

import (
	"bytes"
	"fmt"
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
		ack   bool
		count int
	}{
		{in: frames("OPEN", "p", "ACK"), verb: verbOpen, ack: true},
		{in: frames("ACK", "p", "1"), verb: verbAck, count: 1},
		{in: frames("ACK", "p", "0042"), verb: verbAck, count: 42},
		{in: frames("ACK", "p", "999999999"), verb: verbAck, count: 999999999},
		{frames("OPEN", "p"), verbOpen, "", false, 0},
		{frames("CLOSE", "p"), verbClose, "", false, 0},
		{frames("READ", "p"), verbRead, "", false, 0},
		{frames("WRITE", "p", "data"), verbWrite, "data", false, 0},
		{frames("WRITE", "p", ""), verbWrite, "", false, 0},
		{frames("WRITE", "p", "ERROR"), verbWrite, "ERROR", false, 0},
		{frames("OPEN", strings.Repeat("n", MaxPipeName)), verbOpen, "", false, 0},
	}
	for _, c := range cases {
		r, bad := parseRequest(c.in)
		if bad != "" || r.verb != c.verb || !bytes.Equal(r.pipe, c.in[1]) || string(r.chunk) != c.chunk || r.ack != c.ack || r.count != c.count {
			t.Errorf("parseRequest(%q) = %+v, %q", c.in, r, bad)
		}
	}
}

func TestParseRequestInvalid(t *testing.T) {
	cases := map[string][][]byte{
		"no frames":           nil,
		"empty command":       frames(""),
		"lower case":          frames("open", "p"),
		"unknown":             frames("DELETE", "p"),
		"no name":             frames("OPEN"),
		"empty name":          frames("READ", ""),
		"name too long":       frames("OPEN", strings.Repeat("n", MaxPipeName+1)),
		"write without data":  frames("WRITE", "p"),
		"open extra frame":    frames("OPEN", "p", "x"),
		"read extra frame":    frames("READ", "p", ""),
		"write extra frame":   frames("WRITE", "p", "a", "b"),
		"open lower-case ack": frames("OPEN", "p", "ack"),
		"open ack extra":      frames("OPEN", "p", "ACK", ""),
		"open ack no name":    frames("OPEN", "", "ACK"),
		"ack no count":        frames("ACK", "p"),
		"ack zero":            frames("ACK", "p", "0"),
		"ack negative":        frames("ACK", "p", "-1"),
		"ack plus":            frames("ACK", "p", "+1"),
		"ack space":           frames("ACK", "p", "1 "),
		"ack hex":             frames("ACK", "p", "0x1"),
		"ack empty":           frames("ACK", "p", ""),
		"ack ten digits":      frames("ACK", "p", "1000000000"),
		"ack extra":           frames("ACK", "p", "1", "1"),
		"ack no name":         frames("ACK", "", "1"),
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
	for _, s := range []string{"OPEN\x00p", "WRITE\x00p\x00chunk", "READ\x00", "\x00OPEN\x00p", "WRITE\x00p\x00\x00x", "CLOSE",
		"OPEN\x00p\x00ACK", "ACK\x00p\x0010", "ACK\x00p\x00-1"} {
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
		want := map[verb]int{verbOpen: 2, verbClose: 2, verbRead: 2, verbWrite: 3, verbAck: 3}[r.verb]
		if r.ack {
			want = 3
			if r.verb != verbOpen || string(body[2]) != ArgAck {
				t.Fatalf("accepted the ACK flag on %q", body)
			}
		}
		if want == 0 || len(body) != want {
			t.Fatalf("accepted %d frames for verb %d", len(body), r.verb)
		}
		if r.verb == verbAck && (r.count < 1 || r.count > maxCount || string(body[2]) != fmt.Sprintf("%0*d", len(body[2]), r.count)) {
			t.Fatalf("ACK count %q parsed as %d", body[2], r.count)
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

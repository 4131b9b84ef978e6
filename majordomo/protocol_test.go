package majordomo

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestParseInbound(t *testing.T) {
	cases := []struct {
		in   []string
		want string // summary, or "error: ..." prefix
	}{
		{[]string{"", "MDPC01", "echo", "a", "b"}, "env=1 client v1 REQUEST svc=echo body=a|b"},
		{[]string{"MDPC01", "echo", "a"}, "env=0 client v1 REQUEST svc=echo body=a"},
		{[]string{"x", "y", "", "MDPC01", "echo", "a"}, "env=3 client v1 REQUEST svc=echo body=a"},
		{[]string{"MDPC02", "\x01", "echo", "a"}, "env=0 client v2 REQUEST svc=echo body=a"},
		{[]string{"", "MDPC02", "\x01", "echo", ""}, "env=1 client v2 REQUEST svc=echo body="},
		{[]string{"", "MDPW01", "\x01", "echo"}, "env=1 worker v1 READY svc=echo"},
		{[]string{"MDPW02", "\x01", "echo"}, "env=0 worker v2 READY svc=echo"},
		{[]string{"", "MDPW01", "\x03", "AD", "", "r"}, "env=1 worker v1 REPLY addr=AD body=r"},
		{[]string{"MDPW02", "\x03", "AD", "", "p", "q"}, "env=0 worker v2 PARTIAL addr=AD body=p|q"},
		{[]string{"MDPW02", "\x04", "AD", "", "f"}, "env=0 worker v2 REPLY addr=AD body=f"},
		{[]string{"", "MDPW01", "\x04"}, "env=1 worker v1 HEARTBEAT"},
		{[]string{"MDPW02", "\x05"}, "env=0 worker v2 HEARTBEAT"},
		{[]string{"", "MDPW01", "\x05"}, "env=1 worker v1 DISCONNECT"},
		{[]string{"MDPW02", "\x06"}, "env=0 worker v2 DISCONNECT"},

		{nil, "error: empty message"},
		{[]string{""}, "error: no MDP header"},
		{[]string{"", ""}, "error: no MDP header"},
		{[]string{"MDPC03", "x", "y"}, "error: no MDP header"},
		{[]string{"", "MDPC01"}, "error: request without a service name"},
		{[]string{"", "MDPC01", "echo"}, "error: request without a body frame (replyable)"},
		{[]string{"MDPC02", "\x03", "echo", "x"}, "error: MDPC02 command"},
		{[]string{"MDPC02"}, "error: MDPC02 without a command frame"},
		{[]string{"", "MDPW01", "\x01"}, "error: READY needs"},
		{[]string{"", "MDPW01", "\x01", "a", "b"}, "error: READY needs"},
		{[]string{"", "MDPW01", "\x02", "a", "", "b"}, "error: REQUEST is a broker-to-worker command"},
		{[]string{"", "MDPW01", "\x03", "a", "x", "b"}, "error: REPLY needs"},
		{[]string{"", "MDPW01", "\x03", "a", ""}, "error: REPLY needs"},
		{[]string{"MDPW02", "\x07"}, "error: unknown MDPW02 command 0x07"},
		{[]string{"", "MDPW01", "\x06"}, "error: unknown MDPW01 command 0x06"},
		{[]string{"MDPW02", "\x01\x00", "x"}, "error: MDPW02 command frame of 2 bytes"},
	}
	for _, c := range cases {
		m, err := parseInbound(frames(c.in...))
		got := summary(m)
		if err != nil {
			got = "error: " + err.reason
			if err.replyable {
				got += " (replyable)"
			}
			if len(got) >= len(c.want) && got[:len(c.want)] == c.want {
				continue
			}
		}
		if got != c.want {
			t.Errorf("%q:\n got %s\nwant %s", c.in, got, c.want)
		}
	}
}

func summary(m message) string {
	role := "worker"
	if m.client {
		role = "client"
	}
	s := fmt.Sprintf("env=%d %s v%d %s", len(m.env), role, int(m.version), m.kind)
	if m.service != nil {
		s += " svc=" + string(m.service)
	}
	if m.addr != nil {
		s += " addr=" + string(m.addr)
	}
	if m.body != nil {
		s += " body=" + join(m.body)
	}
	return s
}

func TestClientSideParsers(t *testing.T) {
	for _, v := range []Version{V1, V2} {
		env := [][]byte{{}}
		if v == V2 {
			env = nil
		}
		for _, final := range []bool{true, false} {
			if v == V1 && !final {
				continue
			}
			enc := encodeClientReply(v, env, final, []byte("svc"), frames("a", "b"))
			m, err := parseForClient(v, enc)
			if err != nil || string(m.service) != "svc" || join(m.body) != "a|b" || (m.kind == kFinal) != final {
				t.Errorf("%v final=%v: %+v %v", v, final, m, err)
			}
		}
		f := encodeFailure(v, env, CodeTimeout, []byte("svc"), "why")
		m, err := parseForClient(v, f)
		if err != nil {
			t.Fatal(err)
		}
		if se := failureOf(&m); se == nil || se.Code != CodeTimeout || se.Service != "svc" || se.Reason != "why" {
			t.Errorf("%v failure: %+v", v, se)
		}
		req := encodeWorkerRequest(v, env, []byte("AD"), frames("x"))
		m, err = parseForWorker(v, req)
		if err != nil || m.kind != kWorkerRequest || string(m.addr) != "AD" || join(m.body) != "x" {
			t.Errorf("%v REQUEST: %+v %v", v, m, err)
		}
		for _, k := range []kind{kHeartbeat, kDisconnect} {
			m, err = parseForWorker(v, encodeWorkerCommand(v, env, k, nil))
			if err != nil || m.kind != k {
				t.Errorf("%v %v: %+v %v", v, k, m, err)
			}
		}
		if _, err := parseForWorker(v, workerHello(v, "svc")); err == nil {
			t.Errorf("%v: READY accepted from the broker", v)
		}
	}
}

// fuzzFrames decodes fuzz input into frames: each frame is a length byte
// and that many bytes (the last frame takes what is left).
func fuzzFrames(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		n := int(data[0])
		data = data[1:]
		if n > len(data) {
			n = len(data)
		}
		out = append(out, data[:n:n])
		data = data[n:]
	}
	return out
}

func fuzzEncode(f [][]byte) []byte {
	var out []byte
	for _, fr := range f {
		out = append(out, byte(len(fr)))
		out = append(out, fr...)
	}
	return out
}

func seedMessages() [][][]byte {
	var seeds [][][]byte
	for _, v := range []Version{V1, V2} {
		env := [][]byte{{}}
		if v == V2 {
			env = nil
		}
		seeds = append(seeds,
			encodeClientRequest(v, "echo", frames("hello", "")),
			encodeClientRequest(v, "mmi.service", frames("echo")),
			workerHello(v, "echo"),
			workerSignal(v, kHeartbeat),
			workerSignal(v, kDisconnect),
			encodeWorkerReply(v, true, requestAddr(7), frames("r")),
			encodeWorkerReply(v, false, requestAddr(7), frames("p")),
			encodeWorkerRequest(v, env, requestAddr(1), frames("b")),
			encodeClientReply(v, env, true, []byte("echo"), frames("x")),
			encodeClientReply(v, env, false, []byte("echo"), frames("x")),
			encodeFailure(v, env, CodeTimeout, []byte("echo"), "late"),
		)
	}
	return append(seeds,
		frames("a", "b", "", "MDPC01", "svc", "body"),
		frames("", "MDPC01"),
		frames("MDPC02", "\x03", "svc", "x"),
		frames("", "MDPW01", "\x09"),
		frames("", "", "", "MDPW02"),
	)
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzParse from
// seedMessages when MDP_WRITE_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("MDP_WRITE_SEEDS") != "1" {
		t.Skip("set MDP_WRITE_SEEDS=1 to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, m := range seedMessages() {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", fuzzEncode(m))
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzParse feeds arbitrary multipart messages to every parser: none may
// panic, and whatever parses re-encodes to a message that parses the same.
func FuzzParse(f *testing.F) {
	for _, m := range seedMessages() {
		f.Add(fuzzEncode(m))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := fuzzFrames(data)
		if m, err := parseInbound(in); err == nil {
			var again [][]byte
			switch m.kind {
			case kRequest:
				if len(m.service) == 0 || len(m.body) == 0 {
					t.Fatalf("request without service or body accepted: %q", in)
				}
				again = encodeClientRequest(m.version, string(m.service), m.body)
			case kReady:
				again = workerHello(m.version, string(m.service))
			case kReply, kPartial:
				if len(m.body) == 0 {
					t.Fatalf("reply without body accepted: %q", in)
				}
				again = encodeWorkerReply(m.version, m.kind == kReply, m.addr, m.body)
			case kHeartbeat, kDisconnect:
				again = workerSignal(m.version, m.kind)
			default:
				t.Fatalf("parseInbound returned kind %v", m.kind)
			}
			m2, err := parseInbound(again)
			if err != nil || summary(m2)[6:] != summary(m)[6:] { // ignore env
				t.Fatalf("re-encoded %q parses as %s (%v), was %s", again, summary(m2), err, summary(m))
			}
		} else if err.replyable && !m.client {
			t.Fatalf("replyable error for a worker message: %q", in)
		}
		for _, v := range []Version{V1, V2} {
			if m, err := parseForClient(v, in); err == nil {
				again := encodeClientReply(v, m.env, m.kind == kFinal, m.service, m.body)
				if m2, err := parseForClient(v, again); err != nil || summary(m2) != summary(m) {
					t.Fatalf("client reply %q re-encoded parses as %s (%v), was %s", in, summary(m2), err, summary(m))
				}
				failureOf(&m)
			}
			if m, err := parseForWorker(v, in); err == nil && m.kind == kWorkerRequest {
				again := encodeWorkerRequest(v, m.env, m.addr, m.body)
				if m2, err := parseForWorker(v, again); err != nil || summary(m2) != summary(m) {
					t.Fatalf("worker request %q re-encoded parses as %s (%v), was %s", in, summary(m2), err, summary(m))
				}
			}
		}
	})
}

func TestRequestAddr(t *testing.T) {
	if !bytes.Equal(requestAddr(258), []byte{0, 0, 0, 0, 0, 0, 1, 2}) {
		t.Fatal(requestAddr(258))
	}
}

// Lists from a listBlock are capped: appending to one reallocates it
// instead of overwriting the next one handed out, which a queued message
// may still be being written from.
func TestListBlock(t *testing.T) {
	var b listBlock
	var got [][][]byte
	for i := range 2 * listBlockSize {
		l := b.take(1 + i%3)
		if len(l) != 0 || cap(l) != 1+i%3 {
			t.Fatalf("take(%d): len %d cap %d", 1+i%3, len(l), cap(l))
		}
		for j := range cap(l) {
			l = append(l, []byte{byte(i), byte(j)})
		}
		got = append(got, l)
	}
	for i, l := range got {
		_ = append(l, []byte("overflow")) // must not run into got[i+1]
		for j, f := range l {
			if !bytes.Equal(f, []byte{byte(i), byte(j)}) {
				t.Fatalf("list %d frame %d is %q", i, j, f)
			}
		}
	}
	if l := b.take(2 * listBlockSize); cap(l) != 2*listBlockSize {
		t.Fatalf("a list larger than a block: cap %d", cap(l))
	}
}

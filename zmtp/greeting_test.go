package zmtp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestGreetingBytes(t *testing.T) {
	for _, server := range []bool{false, true} {
		g := greeting("NULL", server)
		want := make([]byte, 64)
		want[0], want[9], want[10], want[11] = 0xFF, 0x7F, 3, 1
		copy(want[12:], "NULL")
		if server {
			want[32] = 1
		}
		if !bytes.Equal(g, want) {
			t.Errorf("greeting(%v) = %x, want %x", server, g, want)
		}
	}
}

func greetingWith(major, minor byte, mech string) []byte {
	g := greeting("NULL", false)
	g[10], g[11] = major, minor
	clear(g[12:32])
	copy(g[12:32], mech)
	return g
}

func TestReadGreeting(t *testing.T) {
	accept := []struct {
		name      string
		g         []byte
		wantMinor byte
	}{
		{"3.1", greetingWith(3, 1, "NULL"), 1},
		{"3.0", greetingWith(3, 0, "NULL"), 0},
		{"3.7 speaks 3.1", greetingWith(3, 7, "NULL"), 1},
		{"4.0 speaks 3.1", greetingWith(4, 0, "NULL"), 1},
		{"any padding", func() []byte { g := greetingWith(3, 1, "NULL"); g[1], g[8] = 1, 2; return g }(), 1},
	}
	for _, c := range accept {
		r := bytes.NewReader(append(c.g, 0xAA))
		minor, mech, err := readGreeting(r)
		if err != nil || minor != c.wantMinor || mech != "NULL" {
			t.Errorf("%s: got minor %d, %v; want %d", c.name, minor, err, c.wantMinor)
		}
		if r.Len() != 1 {
			t.Errorf("%s: readGreeting did not read exactly 64 bytes", c.name)
		}
	}

	refuse := []struct {
		name string
		g    []byte
	}{
		{"bad first byte", func() []byte { g := greeting("NULL", false); g[0] = 0x00; return g }()},
		{"bad last signature byte", func() []byte { g := greeting("NULL", false); g[9] = 0x7E; return g }()},
		{"ZMTP 1.0 identity", []byte{0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
	}
	for _, c := range refuse {
		_, _, err := readGreeting(bytes.NewReader(c.g))
		var pe *ProtocolError
		if !errors.As(err, &pe) {
			t.Errorf("%s: got %v, want a ProtocolError", c.name, err)
		}
	}
}

// TestReadGreetingOldMajorRefusedEarly: a ZMTP 2.x peer sends its signature
// and revision and then waits for ours; we must refuse it from those 11
// bytes instead of waiting for 64.
func TestReadGreetingOldMajorRefusedEarly(t *testing.T) {
	for _, major := range []byte{0, 1, 2} {
		g := greetingWith(major, 0, "NULL")[:11]
		_, _, err := readGreeting(bytes.NewReader(g)) // 11 bytes, then EOF
		var pe *ProtocolError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "not supported") {
			t.Errorf("major %d: got %v, want a ProtocolError refusing the version", major, err)
		}
	}
	if _, _, err := readGreeting(bytes.NewReader(greeting("NULL", false)[:40])); err != io.ErrUnexpectedEOF {
		t.Errorf("truncated greeting: got %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestMetadata(t *testing.T) {
	enc := appendMetadata(nil, [2]string{"Socket-Type", "DEALER"}, [2]string{"Identity", ""}, [2]string{"X-Big", strings.Repeat("v", 300)})
	md, err := parseMetadata(enc)
	if err != nil {
		t.Fatal(err)
	}
	if len(md) != 3 || string(md["socket-type"]) != "DEALER" || len(md["identity"]) != 0 || len(md["x-big"]) != 300 {
		t.Fatalf("round trip: got %q", md)
	}
	if _, ok := md["identity"]; !ok {
		t.Fatal("an empty property must still be present")
	}

	// Names are case-insensitive.
	for _, name := range []string{"socket-type", "SOCKET-TYPE", "sOcKeT-tYpE"} {
		md, err := parseMetadata(appendMetadata(nil, [2]string{name, "REQ"}))
		if err != nil || string(md["socket-type"]) != "REQ" {
			t.Errorf("name %q: got %q, %v", name, md, err)
		}
	}

	// Only ASCII letters fold: other bytes are kept as they are (a
	// Kelvin sign is not a 'k').
	for _, name := range []string{"SOC\u212aET-TYPE", "socket-type\x81"} {
		md, err := parseMetadata(appendMetadata(nil, [2]string{name, "REQ"}))
		if err != nil || md["socket-type"] != nil || len(md) != 1 {
			t.Errorf("name %+q: got %+q, %v", name, md, err)
		}
		for got := range md {
			if len(got) != len(name) {
				t.Errorf("name %+q stored as %+q", name, got)
			}
		}
	}

	if md, err := parseMetadata(nil); err != nil || len(md) != 0 {
		t.Errorf("empty metadata: got %q, %v", md, err)
	}

	malformed := map[string][]byte{
		"zero-length name":  {0, 0, 0, 0, 0},
		"name past end":     {5, 'a', 'b'},
		"no value length":   {1, 'a', 0, 0},
		"value past end":    {1, 'a', 0, 0, 0, 5, 'x'},
		"huge value length": {1, 'a', 0xFF, 0xFF, 0xFF, 0xFF},
		"trailing junk":     append(appendMetadata(nil, [2]string{"a", "b"}), 3),
	}
	for name, data := range malformed {
		if _, err := parseMetadata(data); err == nil {
			t.Errorf("%s: %x accepted", name, data)
		}
	}
}

// TestCompatibilityMatrix checks every pair of socket types against
// RFC 23/ZMTP's table.
func TestCompatibilityMatrix(t *testing.T) {
	valid := map[string]bool{
		"REQ-REP": true, "REQ-ROUTER": true,
		"DEALER-REP": true, "DEALER-DEALER": true, "DEALER-ROUTER": true,
		"ROUTER-ROUTER": true,
		"PUB-SUB":       true, "PUB-XSUB": true, "XPUB-SUB": true, "XPUB-XSUB": true,
		"PUSH-PULL": true,
		"PAIR-PAIR": true,
	}
	types := []string{"REQ", "REP", "DEALER", "ROUTER", "PUB", "XPUB", "SUB", "XSUB", "PUSH", "PULL", "PAIR", "STREAM", "", "dealer"}
	for _, a := range types {
		for _, b := range types {
			want := valid[a+"-"+b] || valid[b+"-"+a]
			if got := compatibleTypes(a, b); got != want {
				t.Errorf("compatibleTypes(%q, %q) = %v, want %v", a, b, got, want)
			}
		}
	}
	for _, typ := range []string{"STREAM", "", "dealer", "SERVER"} {
		if validSocketType(typ) {
			t.Errorf("validSocketType(%q) = true", typ)
		}
		if _, err := Listen(abstractEndpoint(t), Options{SocketType: typ}); err == nil {
			t.Errorf("Listen with socket type %q succeeded", typ)
		}
	}
}

// readAll reads frames until the connection ends and returns the command
// names and ERROR bodies seen.
func readCommands(p *rawPeer) (names []string, errorBodies [][]byte, err error) {
	for {
		flags, body, err := readFrame(p.br, 1<<20)
		if err != nil {
			return names, errorBodies, err
		}
		if flags&flagCommand == 0 {
			continue
		}
		name, data, perr := parseCommand(body)
		if perr != nil {
			return names, errorBodies, perr
		}
		names = append(names, name)
		if name == "ERROR" {
			errorBodies = append(errorBodies, data)
		}
	}
}

// TestHandshakeRefusesIncompatibleType: a PUB peer is refused by our ROUTER
// with a well-formed ERROR command, then disconnected, and never reported
// as Connected.
func TestHandshakeRefusesIncompatibleType(t *testing.T) {
	ts := startServer(t, abstractEndpoint(t), Options{}, nil)
	for _, peerType := range []string{"PUB", "SUB", "PUSH", "PAIR", "", strings.Repeat("X", 300)} {
		p := rawDial(t, ts.endpoint())
		p.greet(1)
		p.nc.Write(appendCommand(nil, "READY", appendMetadata(nil, [2]string{"Socket-Type", peerType})))
		names, bodies, err := readCommands(p)
		if err != io.EOF && !isReset(err) {
			t.Errorf("peer type %.10q: connection ended with %v, want EOF", peerType, err)
		}
		if len(names) != 2 || names[0] != "READY" || names[1] != "ERROR" {
			t.Fatalf("peer type %.10q: got commands %q, want READY then ERROR", peerType, names)
		}
		reason := bodies[0]
		if len(reason) == 0 || int(reason[0]) != len(reason)-1 {
			t.Errorf("peer type %.10q: malformed ERROR body: length byte %d, %d bytes follow", peerType, reason[0], len(reason)-1)
		}
	}
	// A compatible type whose name comes in lower-case metadata is fine.
	p := rawDial(t, ts.endpoint())
	p.greet(1)
	p.nc.Write(appendCommand(nil, "READY", appendMetadata(nil, [2]string{"socket-type", "REQ"}, [2]string{"IDENTITY", "me"})))
	ev := ts.next(Connected)
	if ev.Conn.PeerType() != "REQ" || string(ev.Conn.Identity()) != "me" {
		t.Fatalf("got peer type %q identity %q", ev.Conn.PeerType(), ev.Conn.Identity())
	}
	// Dialing with an incompatible type fails on our side too.
	if _, err := Dial(t.Context(), ts.endpoint(), Options{SocketType: "PUB"}); err == nil {
		t.Fatal("Dial as PUB to a ROUTER succeeded")
	}
}

// TestHandshakeRefusesOldVersionAndMechanism: a ZMTP 2.x peer, which waits
// after its revision byte, is dropped at once (not after the handshake
// timeout); so is a peer asking for a security mechanism.
func TestHandshakeRefusesOldVersionAndMechanism(t *testing.T) {
	ts := startServer(t, abstractEndpoint(t), Options{HandshakeTimeout: time.Minute}, nil)
	for _, g := range [][]byte{greetingWith(2, 0, "NULL")[:11], greetingWith(3, 0, "PLAIN"), greetingWith(3, 1, "CURVE")} {
		p := rawDial(t, ts.endpoint())
		p.nc.SetDeadline(time.Now().Add(10 * time.Second))
		p.nc.Write(g)
		if _, _, err := readGreeting(p.br); err != nil {
			t.Fatalf("server greeting: %v", err)
		}
		if g[10] >= 3 {
			// A mechanism we do not serve gets an ERROR that says so.
			data, err := readCommand(p.br, "READY")
			if err == nil || !strings.Contains(err.Error(), "mechanism mismatch") {
				t.Fatalf("greeting %x...: got %q, %v; want an ERROR naming the mismatch", g[:12], data, err)
			}
		}
		if _, err := p.br.ReadByte(); err != io.EOF && !isReset(err) {
			t.Fatalf("greeting %x...: got %v, want the server to hang up", g[:12], err)
		}
	}
	ts.quiet(100 * time.Millisecond)
}

// FuzzReadGreeting: readGreeting never panics, reads at most 64 bytes, and
// only accepts greetings with a valid signature and version >= 3, whose
// mechanism it returns.
func FuzzReadGreeting(f *testing.F) {
	f.Add(greeting("NULL", false))
	f.Add(greeting("NULL", true))
	f.Add(greetingWith(3, 0, "NULL"))
	f.Add(greetingWith(2, 0, "NULL")[:11])
	f.Add(greetingWith(3, 1, "PLAIN"))
	f.Add([]byte{0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		minor, mech, err := readGreeting(r)
		if consumed := len(data) - r.Len(); consumed > greetingSize {
			t.Fatalf("read %d bytes", consumed)
		}
		if err != nil {
			return
		}
		if len(data) < greetingSize || data[0] != 0xFF || data[9]&1 != 1 || data[10] < 3 ||
			string(bytes.TrimRight(data[12:32], "\x00")) != mech || minor > 1 {
			t.Fatalf("accepted %x (minor %d)", data[:min(len(data), greetingSize)], minor)
		}
	})
}

// FuzzParseMetadata: parsed metadata has non-empty names without ASCII
// upper case, takes no more bytes than it was given, and re-encodes to a list that parses to the same properties.
func FuzzParseMetadata(f *testing.F) {
	f.Add(appendMetadata(nil, [2]string{"Socket-Type", "DEALER"}, [2]string{"Identity", "abc"}))
	f.Add(appendMetadata(nil, [2]string{"SOCKET-TYPE", "REQ"}))
	f.Add([]byte{1, 'a', 0xFF, 0xFF, 0xFF, 0xFF})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, data []byte) {
		md, err := parseMetadata(data)
		if err != nil {
			return
		}
		var props [][2]string
		total := 0
		for name, value := range md {
			if name == "" || strings.ContainsAny(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
				t.Fatalf("bad name %+q", name)
			}
			total += 1 + len(name) + 4 + len(value)
			props = append(props, [2]string{name, string(value)})
		}
		if total > len(data) {
			t.Fatalf("properties take %d bytes, more than the %d parsed", total, len(data))
		}
		md2, err := parseMetadata(appendMetadata(nil, props...))
		if err != nil || len(md2) != len(md) {
			t.Fatalf("re-encoded metadata: %v", err)
		}
		for name, value := range md {
			if !bytes.Equal(md2[name], value) {
				t.Fatalf("property %q changed", name)
			}
		}
	})
}

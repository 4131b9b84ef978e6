package zmtp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// The key pairs of libzmq's zmq_curve(7) test values.
var (
	testServerPublic = mustKey("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7")
	testServerSecret = mustKey("JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6")
	testClientPublic = mustKey("Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID")
	testClientSecret = mustKey("D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs")
)

func mustKey(s string) CurveKey {
	k, err := ParseCurveKey(s)
	if err != nil {
		panic(err)
	}
	return k
}

func TestZ85(t *testing.T) {
	// The test vector of RFC 32.
	hello := []byte{0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B}
	if s, err := Z85Encode(hello); s != "HelloWorld" || err != nil {
		t.Fatalf("encode: %q, %v", s, err)
	}
	if b, err := Z85Decode("HelloWorld"); !bytes.Equal(b, hello) || err != nil {
		t.Fatalf("decode: %x, %v", b, err)
	}
	for i := 0; i < 100; i++ {
		var k CurveKey
		for j := range k {
			k[j] = byte(rand.IntN(256))
		}
		if back, err := ParseCurveKey(k.String()); back != k || err != nil {
			t.Fatalf("round trip of %x: %x, %v", k, back, err)
		}
	}
	if _, err := Z85Encode([]byte{1, 2, 3}); err == nil {
		t.Error("encoded 3 bytes")
	}
	for _, bad := range []string{"Hello", "HelloWorl", "Hello Worl", "Hello\"orld", "#####", strings.Repeat("a", 39)} {
		if _, err := ParseCurveKey(bad); err == nil {
			t.Errorf("ParseCurveKey(%q) succeeded", bad)
		}
	}
	if _, err := Z85Decode("#####"); err == nil || !strings.Contains(err.Error(), "overflows") {
		t.Errorf("Z85Decode(#####): %v, want an overflow", err)
	}
}

func TestCurvePublicKey(t *testing.T) {
	for _, kp := range [][2]CurveKey{{testServerPublic, testServerSecret}, {testClientPublic, testClientSecret}} {
		if pub, err := CurvePublicKey(kp[1]); pub != kp[0] || err != nil {
			t.Errorf("public key of %s: %s, %v; want %s", kp[1], pub, err, kp[0])
		}
	}
	pub, sec, err := NewCurveKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	if derived, _ := CurvePublicKey(sec); derived != pub || pub == (CurveKey{}) {
		t.Fatalf("new pair %s does not derive its public key (%s)", pub, derived)
	}
}

func serverCurve(allowed ...CurveKey) *CurveOptions {
	o := &CurveOptions{PublicKey: testServerPublic, SecretKey: testServerSecret}
	if allowed != nil {
		o.Authorize = func(k CurveKey) error {
			for _, a := range allowed {
				if a == k {
					return nil
				}
			}
			return errors.New("not on the list")
		}
	}
	return o
}

func clientCurve(serverKey CurveKey) *CurveOptions {
	return &CurveOptions{PublicKey: testClientPublic, SecretKey: testClientSecret, ServerKey: serverKey}
}

// logBuffer captures a Socket's log lines.
func logBuffer() (*slog.Logger, *lockedBuffer) {
	b := &lockedBuffer{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}

// TestCurveRoundTrip: our client and server over CURVE, every transport,
// with the test messages (up to 16 MiB); each side learns the other's
// long-term key.
func TestCurveRoundTrip(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ts := startServer(t, tr.endpoint(t), Options{Curve: serverCurve(testClientPublic)}, nil)
			c := dialT(t, ts.endpoint(), Options{Curve: clientCurve(testServerPublic)})
			if k := c.CurveKey(); k == nil || *k != testServerPublic {
				t.Fatalf("client sees server key %v", k)
			}
			if k := ts.next(Connected).Conn.CurveKey(); k == nil || *k != testClientPublic {
				t.Fatalf("server sees client key %v", k)
			}
			for _, msg := range testMessages() {
				if err := c.Send(msg); err != nil {
					t.Fatal(err)
				}
				if got := mustRecv(t, c); !equalFrames(got, msg) {
					t.Fatalf("echo: got %s, want %s", describe(got), describe(msg))
				}
			}
		})
	}
}

// TestCurveRefusedGo: the handshake fails, with a reason on both sides,
// for a client key not admitted, a client expecting another server key,
// and a mechanism mismatch either way.
func TestCurveRefusedGo(t *testing.T) {
	other, _, _ := NewCurveKeyPair()
	cases := []struct {
		name          string
		server, dial  *CurveOptions
		dialErr, sLog string
	}{
		{"unknown client key", serverCurve(other), clientCurve(testServerPublic), `"400"`, testClientPublic.String()},
		{"other server key", serverCurve(), clientCurve(other), "EOF", "expects another server key"},
		{"NULL client", serverCurve(), nil, "mechanism mismatch: peer offers CURVE, this endpoint requires NULL", "peer offers NULL"},
		{"CURVE client, NULL server", nil, clientCurve(testServerPublic), "mechanism mismatch", "peer offers CURVE, this endpoint requires NULL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			log, buf := logBuffer()
			ts := startServer(t, tcpEndpoint(t), Options{Curve: c.server, Logger: log}, nil)
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			conn, err := Dial(ctx, ts.endpoint(), Options{SocketType: "DEALER", Curve: c.dial})
			if err == nil {
				conn.Close()
				t.Fatal("Dial succeeded")
			}
			if !strings.Contains(err.Error(), c.dialErr) {
				t.Errorf("Dial: %v, want %q", err, c.dialErr)
			}
			waitFor(t, testTimeout, "the refusal in the log", func() bool { return strings.Contains(buf.String(), c.sLog) })
			if !strings.Contains(buf.String(), "peer refused in handshake") {
				t.Errorf("log: %s", buf.String())
			}
			ts.quiet(0)
		})
	}
}

// TestCurveFrameLayout: on the wire a multipart message is one MESSAGE
// per frame, each an ordinary frame without MORE (libzmq's layout): MORE
// and COMMAND travel inside the box, and nonces increase by one.
func TestCurveFrameLayout(t *testing.T) {
	var shared [32]byte
	copy(shared[:], "a shared key for the layout test")
	s := newCurveSealer(&shared, false, 2)
	var w batchWriter
	var out bytes.Buffer
	conn := writerConn{&out}
	batch := []Outgoing{
		{Frames: [][]byte{[]byte("a"), {}, bytes.Repeat([]byte("c"), 300)}},
		{Frames: [][]byte{pingData(time.Second)}, command: "PING"},
	}
	if n, err := w.write(conn, batch, s); n != 2 || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	o := newCurveOpener(&shared, false, 2)
	br := bufio.NewReader(&out)
	want := []struct {
		inner byte
		body  string
	}{{flagMore, "a"}, {flagMore, ""}, {0, strings.Repeat("c", 300)}, {flagCommand, "\x04PING\x00\x0a"}}
	for i, wf := range want {
		outer, msg, err := readFrame(br, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if outer&(flagMore|flagCommand) != 0 {
			t.Errorf("frame %d: outer flags %#x", i, outer)
		}
		if n := uint64(3 + i); !bytes.HasPrefix(msg, fmt.Appendf(nil, "\x07MESSAGE\x00\x00\x00\x00\x00\x00\x00%c", n)) {
			t.Errorf("frame %d: starts %q, want MESSAGE with nonce %d", i, msg[:16], n)
		}
		flags, body, err := o.open(msg)
		if err != nil || flags != wf.inner || string(body) != wf.body {
			t.Errorf("frame %d: flags %#x body %q %v; want %#x %q", i, flags, body, err, wf.inner, wf.body)
		}
	}
}

type writerConn struct{ w io.Writer }

func (c writerConn) Write(p []byte) (int, error) { return c.w.Write(p) }

func (writerConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (writerConn) Close() error                     { return nil }
func (writerConn) LocalAddr() net.Addr              { return nil }
func (writerConn) RemoteAddr() net.Addr             { return nil }
func (writerConn) SetDeadline(time.Time) error      { return nil }
func (writerConn) SetReadDeadline(time.Time) error  { return nil }
func (writerConn) SetWriteDeadline(time.Time) error { return nil }

// TestCurveNonces: a MESSAGE whose nonce is not above the last one is
// refused, whether repeated or lower; gaps are allowed.
func TestCurveNonces(t *testing.T) {
	var shared [32]byte
	seal := func(n uint64) []byte {
		s := newCurveSealer(&shared, true, n-1)
		frame := s.appendFrame(nil, 0, "", []byte("x"))
		return frame[2:] // without the frame header
	}
	o := newCurveOpener(&shared, true, 1)
	for _, step := range []struct {
		n  uint64
		ok bool
	}{{2, true}, {2, false}, {5, true}, {3, false}, {5, false}, {6, true}} {
		_, _, err := o.open(seal(step.n))
		if (err == nil) != step.ok {
			t.Errorf("nonce %d: %v, want ok=%v", step.n, err, step.ok)
		}
	}
	// A box sealed in the other direction does not open.
	if _, _, err := newCurveOpener(&shared, false, 0).open(seal(9)); err == nil {
		t.Error("opened a server's MESSAGE as a client's")
	}
}

// tapRelay forwards one TCP connection to target, keeping all it saw and
// the last MESSAGE frame the client sent, so a test can look for
// plaintext and replay a frame.
type tapRelay struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	seen   bytes.Buffer
	last   []byte
	// outer counts the client's MESSAGE frames by their frame flags.
	outer map[byte]int
	up    net.Conn
}

func startTapRelay(t *testing.T, target string) *tapRelay {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &tapRelay{l: l, target: strings.TrimPrefix(target, "tcp://"), outer: map[byte]int{}}
	t.Cleanup(func() { l.Close() })
	go r.serve(t)
	return r
}

func (r *tapRelay) endpoint() string { return "tcp://" + r.l.Addr().String() }

func (r *tapRelay) serve(t *testing.T) {
	down, err := r.l.Accept()
	if err != nil {
		return
	}
	up, err := net.Dial("tcp", r.target)
	if err != nil {
		down.Close()
		return
	}
	r.mu.Lock()
	r.up = up
	r.mu.Unlock()
	t.Cleanup(func() { down.Close(); up.Close() })
	go func() { io.Copy(down, io.TeeReader(up, r)); down.Close() }()
	br := bufio.NewReader(io.TeeReader(down, r))
	g := make([]byte, greetingSize)
	if _, err := io.ReadFull(br, g); err != nil {
		return
	}
	up.Write(g)
	for {
		flags, body, err := readFrame(br, 1<<30)
		if err != nil {
			up.Close()
			return
		}
		raw := append(appendFrameHeader(nil, flags, len(body)), body...)
		r.mu.Lock()
		if bytes.HasPrefix(body, []byte(messageCommand)) {
			r.last = raw
			r.outer[flags&^flagLong]++
		}
		r.mu.Unlock()
		up.Write(raw)
	}
}

func (r *tapRelay) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen.Write(p)
}

func (r *tapRelay) replayLast() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.up.Write(r.last)
}

// TestCurveRelaySeesNoPlaintextAndReplayEnds: a relay between a libzmq
// CURVE client and us sees none of the payload, and a MESSAGE it replays
// ends the connection.
func TestCurveRelaySeesNoPlaintextAndReplayEnds(t *testing.T) {
	py := zmqPython(t)
	log, buf := logBuffer()
	ts := startServer(t, tcpEndpoint(t), Options{Curve: serverCurve(), Logger: log}, nil)
	relay := startTapRelay(t, ts.endpoint())
	pub, sec := pyKeypair(t, py)
	t.Setenv("ZMTP_CURVE_CLIENT", testServerPublic.String()+" "+pub.String()+" "+sec.String())
	secret := strings.Repeat("plaintext chunk ", 64)
	proc := startPeer(t, py, "-c", fmt.Sprintf(`
import sys, time; sys.path.insert(0, %q)
import zmq, common
ctx = zmq.Context(); s = common.socket(ctx, zmq.DEALER); s.connect(%q)
for i in range(3):
    common.send(s, [b"head", %q.encode()], "request")
    common.check_equal(common.recv(s, "echo"), [b"head", %q.encode()], "echo")
print("echoed", flush=True)
time.sleep(30)
`, pyScript(""), relay.endpoint(), secret, secret))
	conn := ts.next(Connected).Conn
	waitFor(t, testTimeout, "the echoes", func() bool {
		if proc.exited() {
			t.Fatalf("client: %v", proc.wait())
		}
		return strings.Contains(proc.out.String(), "echoed")
	})
	relay.mu.Lock()
	// libzmq sends each MESSAGE as an ordinary frame, MORE only inside
	// the box: 3 two-frame requests are 6 frames without flags.
	if len(relay.outer) != 1 || relay.outer[0] < 6 {
		t.Errorf("libzmq's MESSAGE frames by outer flags: %v, want only 0x00", relay.outer)
	}
	seen := relay.seen.Bytes()
	if len(seen) < 3*len(secret) || bytes.Contains(seen, []byte("plaintext chunk")) || bytes.Contains(seen, []byte("head")) {
		t.Errorf("relay saw %d bytes, with plaintext: %v", len(seen), bytes.Contains(seen, []byte("plaintext")))
	}
	relay.mu.Unlock()
	relay.replayLast()
	ev := ts.next(Disconnected)
	if ev.Conn != conn || ev.Err == nil || !strings.Contains(ev.Err.Error(), "replayed") {
		t.Fatalf("after replay: %v", ev.Err)
	}
	_ = buf
}

func pyKeypair(t *testing.T, py string) (public, secret CurveKey) {
	t.Helper()
	out, err := exec.Command(py, pyScript("curve.py"), "keypair").CombinedOutput()
	if err != nil {
		t.Fatalf("keypair: %v: %s", err, out)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		t.Fatalf("keypair printed %q", out)
	}
	return mustKey(f[0]), mustKey(f[1])
}

// pyCurveClient puts the libzmq peers the test starts on CURVE with a new
// key pair from zmq.curve_keypair(), and returns its public key.
func pyCurveClient(t *testing.T, py string, serverKey CurveKey) CurveKey {
	pub, sec := pyKeypair(t, py)
	t.Setenv("ZMTP_CURVE_CLIENT", serverKey.String()+" "+pub.String()+" "+sec.String())
	return pub
}

// TestCurveInteropPython: libzmq CURVE clients against our CURVE server:
// a DEALER echoing every test message (16 MiB multipart ones too), a
// REQ, and a DEALER idle with ZMQ_HEARTBEAT_IVL, whose PINGs and our
// PONGs travel as commands inside the box.
func TestCurveInteropPython(t *testing.T) {
	py := zmqPython(t)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"dealer", []string{"dealer.py", "echo"}},
		{"req", []string{"req.py"}},
		{"heartbeat", []string{"dealer.py", "idle", "1.5", "1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			client := pyCurveClient(t, py, testServerPublic)
			ts := startServer(t, tcpEndpoint(t), Options{Curve: serverCurve(client)}, nil)
			args := append([]string{pyScript(c.args[0]), ts.endpoint()}, c.args[1:]...)
			runPeer(t, py, args...)
			if k := ts.next(Connected).Conn.CurveKey(); k == nil || *k != client {
				t.Fatalf("client key %v, want %s", k, client)
			}
		})
	}
}

// TestCurveInteropSubscribe: a libzmq SUB sends its subscription as a
// SUBSCRIBE command inside the box; it reaches the owner as 0x01+topic.
func TestCurveInteropSubscribe(t *testing.T) {
	py := zmqPython(t)
	pyCurveClient(t, py, testServerPublic)
	ts := startServer(t, tcpEndpoint(t), Options{SocketType: "PUB", Curve: serverCurve()}, func(ev Event) {
		if len(ev.Frames) == 1 && string(ev.Frames[0]) == "\x01a" {
			ev.Conn.Send([][]byte{[]byte("b"), []byte("topic b")})
			ev.Conn.Send([][]byte{[]byte("a"), []byte("topic a")})
		}
	})
	runPeer(t, py, pyScript("curve.py"), "sub", ts.endpoint())
}

// TestCurveInteropRefused: libzmq's monitor reports the failed handshake
// and our log says why, for a NULL client, a client key not admitted and
// a client expecting another server key.
func TestCurveInteropRefused(t *testing.T) {
	py := zmqPython(t)
	other, _, _ := NewCurveKeyPair()
	cases := []struct {
		name      string
		serverKey *CurveKey // nil: a NULL client
		admit     bool
		event     string
		log       string
	}{
		{"NULL client", nil, true, "EVENT_HANDSHAKE_FAILED_PROTOCOL", "security mechanism mismatch (this endpoint requires CURVE)"},
		{"unknown client key", &testServerPublic, false, "EVENT_HANDSHAKE_FAILED_AUTH 400", "CURVE client key refused"},
		{"other server key", &other, true, "EVENT_HANDSHAKE_FAILED_NO_DETAIL", "expects another server key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var client CurveKey
			if c.serverKey != nil {
				client = pyCurveClient(t, py, *c.serverKey)
			}
			admitted := other
			if c.admit {
				admitted = client
			}
			log, buf := logBuffer()
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("server log:\n%s", buf)
				}
			})
			ts := startServer(t, tcpEndpoint(t), Options{Curve: serverCurve(admitted), Logger: log}, nil)
			proc := startPeer(t, py, pyScript("curve.py"), "refused", ts.endpoint())
			if err := proc.wait(); err != nil {
				t.Fatal(err)
			}
			out := proc.out.String()
			if !strings.HasPrefix(out, c.event) {
				t.Fatalf("monitor: %q, want %q", out, c.event)
			}
			t.Logf("libzmq's monitor: %s", out)
			waitFor(t, testTimeout, "the refusal in the log", func() bool { return strings.Contains(buf.String(), c.log) })
			if c.serverKey != nil && !c.admit && !strings.Contains(buf.String(), client.String()) {
				t.Errorf("log does not name the client key: %s", buf.String())
			}
			ts.quiet(0)
		})
	}
}

// TestCurveInteropDialPythonServer: our CURVE client against a libzmq
// CURVE server, which sends as-server 0 in its greeting: we must not
// check it.
func TestCurveInteropDialPythonServer(t *testing.T) {
	py := zmqPython(t)
	pub, sec := pyKeypair(t, py)
	t.Setenv("ZMTP_CURVE_SERVER", sec.String())
	proc := startPeer(t, py, pyScript("router_echo.py"), "tcp://127.0.0.1:*")
	endpoint := proc.endpoint(t)
	raw, err := net.Dial("tcp", strings.TrimPrefix(endpoint, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	raw.SetDeadline(time.Now().Add(testTimeout))
	raw.Write(greeting("CURVE", false))
	var g [greetingSize]byte
	if _, err := io.ReadFull(raw, g[:]); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if mech := string(bytes.TrimRight(g[12:32], "\x00")); mech != "CURVE" || g[32] != 0 {
		t.Fatalf("libzmq's CURVE server greets with mechanism %q, as-server %d; this test expects CURVE, 0", mech, g[32])
	}
	c := dialT(t, endpoint, Options{Curve: &CurveOptions{PublicKey: testClientPublic, SecretKey: testClientSecret, ServerKey: pub}})
	for _, msg := range testMessages() {
		if err := c.Send(msg); err != nil {
			t.Fatal(err)
		}
		if got := mustRecv(t, c); !equalFrames(got, msg) {
			t.Fatalf("echo: got %s, want %s", describe(got), describe(msg))
		}
	}
	c.Send([][]byte{[]byte("QUIT")})
	if got := mustRecv(t, c); len(got) != 1 || string(got[0]) != "BYE" {
		t.Fatalf("got %s", describe(got))
	}
	if err := proc.wait(); err != nil {
		t.Fatal(err)
	}
}

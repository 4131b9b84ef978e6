package zmtp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/zbroker/zbroker/internal/interop"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// testTimeout bounds every wait in the suite, so a hang fails instead of
// blocking. It is generous: the machine may be small and shared.
const testTimeout = 30 * time.Second

// quietLogger discards the transport's logs.
var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// uniq is a name unique to this test run: the test name plus a random
// suffix.
func uniq(t testing.TB) string {
	var b [6]byte
	rand.Read(b[:])
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
			return r
		}
		return '_'
	}, t.Name())
	if len(name) > 48 {
		name = name[len(name)-48:]
	}
	return name + "-" + hex.EncodeToString(b[:])
}

func abstractEndpoint(t testing.TB) string { return "ipc://@/zbroker-test/" + uniq(t) }

func pathEndpoint(t testing.TB) string {
	return "ipc://" + filepath.Join(t.TempDir(), "s.sock")
}

func tcpEndpoint(testing.TB) string { return "tcp://127.0.0.1:0" }

// transports are the three kinds of endpoint every end-to-end test covers.
// Their function gives the endpoint to Listen on; use Socket.Endpoint()
// to connect (it has the real TCP port).
var transports = []struct {
	name     string
	endpoint func(testing.TB) string
}{
	{"ipc-abstract", abstractEndpoint},
	{"ipc-path", pathEndpoint},
	{"tcp", tcpEndpoint},
}

func evName(t EventType) string {
	switch t {
	case Connected:
		return "Connected"
	case Message:
		return "Message"
	case Disconnected:
		return "Disconnected"
	}
	return fmt.Sprintf("EventType(%d)", t)
}

// testServer runs a listening Socket and its event loop. Message events
// go to onMsg (default: echo the message back); Connected and
// Disconnected events are queued on life for the test to inspect.
type testServer struct {
	t        testing.TB
	sock     *Socket
	life     chan Event
	msgs     atomic.Int64
	stopped  chan struct{}
	closeErr error
	once     sync.Once
}

func echo(ev Event) { ev.Conn.Send(ev.Frames) }

func startServer(t testing.TB, endpoint string, opts Options, onMsg func(Event)) *testServer {
	t.Helper()
	if opts.SocketType == "" {
		opts.SocketType = "ROUTER"
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger
	}
	if onMsg == nil {
		onMsg = echo
	}
	sock, err := Listen(endpoint, opts)
	if err != nil {
		t.Fatalf("Listen(%q): %v", endpoint, err)
	}
	ts := &testServer{t: t, sock: sock, life: make(chan Event, 4096), stopped: make(chan struct{})}
	go func() {
		defer close(ts.stopped)
		for b := range sock.Events() {
			for _, ev := range b.Events {
				if ev.Type == Message {
					ts.msgs.Add(1)
					onMsg(ev)
					continue
				}
				select {
				case ts.life <- ev:
				default:
					panic("testServer: lifecycle event buffer full")
				}
			}
			b.Release()
		}
	}()
	t.Cleanup(ts.close)
	return ts
}

// close closes the Socket and waits for its event loop, failing the test
// if either hangs.
func (ts *testServer) close() {
	ts.once.Do(func() {
		done := make(chan error, 1)
		go func() { done <- ts.sock.Close() }()
		select {
		case ts.closeErr = <-done:
		case <-time.After(testTimeout):
			ts.t.Errorf("Socket.Close did not return within %v", testTimeout)
			return
		}
		select {
		case <-ts.stopped:
		case <-time.After(testTimeout):
			ts.t.Errorf("Events channel not closed %v after Socket.Close", testTimeout)
		}
	})
}

func (ts *testServer) endpoint() string { return ts.sock.Endpoint() }

// next returns the next Connected or Disconnected event, which must be of
// type want.
func (ts *testServer) next(want EventType) Event {
	ts.t.Helper()
	return ts.nextWithin(want, testTimeout)
}

func (ts *testServer) nextWithin(want EventType, d time.Duration) Event {
	ts.t.Helper()
	select {
	case ev := <-ts.life:
		if ev.Type != want {
			ts.t.Fatalf("got %s event (err %v), want %s", evName(ev.Type), ev.Err, evName(want))
		}
		return ev
	case <-time.After(d):
		ts.t.Fatalf("no %s event within %v", evName(want), d)
	}
	panic("unreachable")
}

// quiet checks that no lifecycle event arrives for d.
func (ts *testServer) quiet(d time.Duration) {
	ts.t.Helper()
	select {
	case ev := <-ts.life:
		ts.t.Fatalf("unexpected %s event (err %v)", evName(ev.Type), ev.Err)
	default:
	}
	if d <= 0 {
		return
	}
	select {
	case ev := <-ts.life:
		ts.t.Fatalf("unexpected %s event (err %v)", evName(ev.Type), ev.Err)
	case <-time.After(d):
	}
}

// dialT is Dial with a timeout and a Cleanup that closes the connection.
func dialT(t testing.TB, endpoint string, opts Options) *Conn {
	t.Helper()
	if opts.SocketType == "" {
		opts.SocketType = "DEALER"
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := Dial(ctx, endpoint, opts)
	if err != nil {
		t.Fatalf("Dial(%q): %v", endpoint, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// recvTimeout is Recv bounded by d.
func recvTimeout(t testing.TB, c *Conn, d time.Duration) ([][]byte, error) {
	t.Helper()
	type result struct {
		frames [][]byte
		err    error
	}
	ch := make(chan result, 1)
	go func() {
		f, err := c.Recv()
		ch <- result{f, err}
	}()
	select {
	case r := <-ch:
		return r.frames, r.err
	case <-time.After(d):
		t.Fatalf("Recv: nothing within %v", d)
	}
	panic("unreachable")
}

// mustRecv receives one message and fails the test on error.
func mustRecv(t testing.TB, c *Conn) [][]byte {
	t.Helper()
	f, err := recvTimeout(t, c, testTimeout)
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	return f
}

// equalFrames compares messages without printing 16 MiB of bytes.
func equalFrames(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func describe(frames [][]byte) string {
	var sb strings.Builder
	sb.WriteString("[")
	for i, f := range frames {
		if i > 0 {
			sb.WriteString(" ")
		}
		if len(f) <= 16 {
			fmt.Fprintf(&sb, "%q", f)
		} else {
			fmt.Fprintf(&sb, "<%d bytes %q...>", len(f), f[:8])
		}
	}
	sb.WriteString("]")
	return sb.String()
}

// patterned returns n bytes depending on seed, so swapped frames differ.
func patterned(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i%251) + seed
	}
	return b
}

// testMessages are the messages every echo exchange sends: short, empty
// frames, frames around the short/long boundary, and 16 MiB frames.
func testMessages() [][][]byte {
	return [][][]byte{
		{[]byte("hello")},
		{{}},
		{{}, []byte("a"), {}},
		{patterned(255, 1), patterned(256, 2), patterned(300, 3)},
		{patterned(copyLimit, 4), patterned(copyLimit+1, 5), {}},
		{patterned(16<<20, 6)},
		{[]byte("head"), patterned(16<<20, 7), {}},
	}
}

// rawPeer is a hand-driven ZMTP peer on a plain net.Conn, for behaviour a
// well-behaved implementation would never show.
type rawPeer struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func rawDial(t testing.TB, endpoint string) *rawPeer {
	t.Helper()
	network, addr, err := splitEndpoint(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.DialTimeout(network, addr, testTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", endpoint, err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(testTimeout))
	return &rawPeer{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// greet sends a ZMTP 3.minor NULL greeting and reads the server's.
func (p *rawPeer) greet(minor byte) {
	p.t.Helper()
	g := greeting("NULL", false)
	g[11] = minor
	if _, err := p.nc.Write(g); err != nil {
		p.t.Fatalf("write greeting: %v", err)
	}
	if _, _, err := readGreeting(p.br); err != nil {
		p.t.Fatalf("read greeting: %v", err)
	}
}

// handshake completes a 3.minor handshake as socketType with extra
// READY properties, and checks the server's READY.
func (p *rawPeer) handshake(minor byte, socketType string, props ...[2]string) {
	p.t.Helper()
	p.greet(minor)
	md := appendMetadata(nil, append([][2]string{{"Socket-Type", socketType}}, props...)...)
	if _, err := p.nc.Write(appendCommand(nil, "READY", md)); err != nil {
		p.t.Fatalf("write READY: %v", err)
	}
	flags, body, err := readFrame(p.br, 1<<20)
	if err != nil {
		p.t.Fatalf("read READY: %v", err)
	}
	name, data, err := parseCommand(body)
	if flags&flagCommand == 0 || err != nil || name != "READY" {
		p.t.Fatalf("expected READY, got flags %#x body %q", flags, body)
	}
	if _, err := parseMetadata(data); err != nil {
		p.t.Fatalf("server READY: %v", err)
	}
}

func encodeMessage(frames ...[]byte) []byte {
	var b []byte
	for i, f := range frames {
		var flags byte
		if i < len(frames)-1 {
			flags = flagMore
		}
		b = appendFrameHeader(b, flags, len(f))
		b = append(b, f...)
	}
	return b
}

func (p *rawPeer) send(frames ...[]byte) error {
	_, err := p.nc.Write(encodeMessage(frames...))
	return err
}

// recv reads one message; commands in between are returned separately.
func (p *rawPeer) recv() (frames [][]byte, commands []string, err error) {
	for {
		flags, body, err := readFrame(p.br, 1<<30)
		if err != nil {
			return frames, commands, err
		}
		if flags&flagCommand != 0 {
			name, _, err := parseCommand(body)
			if err != nil {
				return frames, commands, err
			}
			commands = append(commands, name)
			continue
		}
		frames = append(frames, body)
		if flags&flagMore == 0 {
			return frames, commands, nil
		}
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func goroutineDump() string {
	var b bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&b, 1)
	return b.String()
}

// ---- interop prerequisites ----

// zmqPython finds a python interpreter that can import zmq.
func zmqPython(t testing.TB) string { return interop.Python(t) }

// interopDir holds what the suite builds (the C client); TestMain removes it.
var interopDir string

var cClientOnce sync.Once

// cClient compiles testdata/interop/client.c against libzmq once per run.
func cClient(t testing.TB) string {
	t.Helper()
	cClientOnce.Do(func() {
		dir, err := os.MkdirTemp("", "zmtp-interop-")
		if err != nil {
			t.Fatal(err)
		}
		interopDir = dir
	})
	out := filepath.Join(interopDir, "client")
	if _, err := os.Stat(out); err != nil {
		interop.CompileC(t, filepath.Join("testdata", "interop", "client.c"), out)
	}
	return out
}

func TestMain(m *testing.M) {
	code := m.Run()
	if interopDir != "" {
		os.RemoveAll(interopDir)
	}
	os.Exit(code)
}

// runPeer runs an interop program to completion (bounded by testTimeout)
// and fails the test, with its output, if it does not exit 0.
func runPeer(t testing.TB, name string, args ...string) {
	t.Helper()
	if err := startPeer(t, name, args...).wait(); err != nil {
		t.Fatal(err)
	}
}

type peerProc struct {
	cmd    *exec.Cmd
	out    *lockedBuffer
	done   chan struct{}
	err    error
	cancel context.CancelFunc
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startPeer starts an interop program in the background; Cleanup kills it
// if the test did not wait for it.
func startPeer(t testing.TB, name string, args ...string) *peerProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	cmd := exec.CommandContext(ctx, name, args...)
	p := &peerProc{cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{}), cancel: cancel}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	// Keep python from writing __pycache__ into testdata.
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		cancel()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	return p
}

func (p *peerProc) wait() error {
	<-p.done
	if p.err != nil {
		return fmt.Errorf("%s: %v\n--- output ---\n%s", strings.Join(p.cmd.Args, " "), p.err, p.out.String())
	}
	return nil
}

// endpoint waits for the first line the peer prints: the endpoint it
// bound (router_echo.py prints the real port of "tcp://...:*").
func (p *peerProc) endpoint(t testing.TB) string {
	t.Helper()
	var endpoint string
	waitFor(t, testTimeout, "the peer to print its endpoint", func() bool {
		if p.exited() {
			t.Fatalf("the peer exited early: %v", p.wait())
		}
		out := p.out.String()
		if i := strings.IndexByte(out, '\n'); i >= 0 {
			endpoint = strings.TrimSpace(out[:i])
			return true
		}
		return false
	})
	return endpoint
}

func (p *peerProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func pyScript(name string) string { return filepath.Join("testdata", "interop", name) }

// isReset reports a connection reset by the peer, which some kernels give
// instead of EOF when the peer closes with data unread.
func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

package zpipes_test

// End-to-end tests against real libzmq peers: pyzmq (Debian's python3-zmq,
// libzmq 4.3) driven through testdata/interop/peer.py, a C client built from
// testdata/interop/zpipes_client.c against libzmq, and the zbroker binary.
//
// The peers are separate processes, so a test can SIGKILL a reader or let a
// writer exit and start a new process later, as applications do.
//
// When python3-zmq or libzmq3-dev is missing the tests skip, unless
// CI=true or ZBROKER_INTEROP=require, where they fail: a CI run must never
// pass without having talked to libzmq.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/interop"
	"github.com/zbroker/zbroker/internal/testsupport"
	"github.com/zbroker/zbroker/zpipes"
)

const (
	// ixLineTimeout bounds every wait for one reply or output line of a
	// peer process, so a hang fails fast instead of hitting go test's
	// timeout.
	ixLineTimeout = 10 * time.Second
	// ixPeerLifetime is a hard limit on every peer process (SIGALRM).
	ixPeerLifetime = 120
)

// ---------------------------------------------------------------------------
// Environment: python with zmq, a C compiler with libzmq, the broker binary.

// ixPythonPath returns a python interpreter that can import zmq.
func ixPythonPath(t *testing.T) string { return interop.Python(t) }

// ixBuildCClient compiles testdata/interop/zpipes_client.c against libzmq.
func ixBuildCClient(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "zpipes_client")
	interop.CompileC(t, filepath.Join("testdata", "interop", "zpipes_client.c"), bin)
	return bin
}

// ixName is a broker name no other test (or test run) uses.
func ixName(tag string) string {
	return "itest-" + tag + "-" + rand.Text()[:10]
}

// ixStartBroker starts an in-process broker with a unique name. Its log is
// shown if the test fails.
func ixStartBroker(t *testing.T, tag string, opts zpipes.Options) *zpipes.Server {
	t.Helper()
	logs := &testsupport.Buffer{}
	opts.Name = ixName(tag)
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := zpipes.Start(opts)
	if err != nil {
		t.Fatalf("zpipes.Start(%q): %v", opts.Name, err)
	}
	t.Cleanup(func() {
		srv.Close()
		if t.Failed() || os.Getenv("ZBROKER_INTEROP_LOGS") != "" {
			t.Logf("broker %s log:\n%s", opts.Name, tail(logs.String(), 60))
		}
	})
	return srv
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = append([]string{fmt.Sprintf("... (%d lines before)", len(l)-lines)}, l[len(l)-lines:]...)
	}
	return strings.Join(l, "\n")
}

// ixWait polls cond until it holds or timeout passes.
func ixWait(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ixWaitStats(t *testing.T, srv *zpipes.Server, what string, cond func(zpipes.Stats) bool) zpipes.Stats {
	t.Helper()
	var st zpipes.Stats
	deadline := time.Now().Add(5 * time.Second)
	for {
		st = srv.Stats()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; broker stats: %+v", what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// pyzmq peers.

// ixPeer is one peer.py process: a libzmq socket connected to the broker,
// driven over stdin, reporting every received message on stdout.
type ixPeer struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan ixLine // closed after the process has exited
	backlog []ixLine    // lines read ahead while looking for another kind
	stderr  *testsupport.Buffer
	exited  chan struct{}
	waitErr error
}

type ixLine struct {
	kind   string   // msg, status, blast, error, ready
	frames []string // for msg
	words  []string // for the others
}

// ixStartPeer starts peer.py with a socket of the given type (DEALER, REQ)
// connected to endpoint, and waits until it runs.
func ixStartPeer(t *testing.T, endpoint, socktype, name string) *ixPeer {
	t.Helper()
	py := ixPythonPath(t)
	cmd := exec.Command(py, filepath.Join("testdata", "interop", "peer.py"), endpoint, socktype, strconv.Itoa(ixPeerLifetime))
	p := &ixPeer{t: t, name: name, cmd: cmd, lines: make(chan ixLine, 4096), stderr: &testsupport.Buffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting peer %s: %v", name, err)
	}
	go p.readLoop(stdout)
	t.Cleanup(func() {
		p.stdin.Close()
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
		}
		for range p.lines { // let readLoop finish
		}
	})
	if l := p.next(); l.kind != "ready" {
		t.Fatalf("peer %s: first line %q, want ready", name, l.kind)
	}
	return p
}

func (p *ixPeer) readLoop(stdout io.Reader) {
	br := bufio.NewReaderSize(stdout, 1<<20)
	defer func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
		close(p.lines)
	}()
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		words := strings.Fields(line)
		if len(words) == 0 {
			continue
		}
		l := ixLine{kind: words[0], words: words[1:]}
		if l.kind == "msg" {
			for _, w := range words[1:] {
				l.frames = append(l.frames, ixDecode(w))
			}
		}
		p.lines <- l
	}
}

func ixEncode(frame string) string {
	if frame == "" {
		return "-"
	}
	return base64.StdEncoding.EncodeToString([]byte(frame))
}

func ixDecode(tok string) string {
	if tok == "-" {
		return ""
	}
	b, err := base64.StdEncoding.DecodeString(tok)
	if err != nil {
		return "<bad base64 from peer: " + err.Error() + ">"
	}
	return string(b)
}

func (p *ixPeer) command(words ...string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, strings.Join(words, " ")+"\n"); err != nil {
		p.t.Fatalf("peer %s: writing command: %v; stderr: %s", p.name, err, p.stderr)
	}
}

// next returns the peer's next output line, failing the test if none comes
// within ixLineTimeout or the peer has exited.
func (p *ixPeer) next() ixLine {
	p.t.Helper()
	if len(p.backlog) > 0 {
		l := p.backlog[0]
		p.backlog = p.backlog[1:]
		return l
	}
	return p.nextLive(ixLineTimeout)
}

func (p *ixPeer) nextLive(timeout time.Duration) ixLine {
	p.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case l, ok := <-p.lines:
		if !ok {
			p.t.Fatalf("peer %s exited (%v) while a reply was expected; stderr:\n%s", p.name, p.waitErr, p.stderr)
		}
		if l.kind == "error" {
			p.t.Fatalf("peer %s reported: %s; stderr:\n%s", p.name, strings.Join(l.words, " "), p.stderr)
		}
		return l
	case <-timer.C:
		p.t.Fatalf("peer %s: nothing received within %v (broker hung or reply lost); stderr:\n%s", p.name, timeout, p.stderr)
	}
	panic("unreachable")
}

// send queues one multipart message; it returns at once.
func (p *ixPeer) send(frames ...string) {
	p.t.Helper()
	words := []string{"send"}
	for _, f := range frames {
		words = append(words, ixEncode(f))
	}
	p.command(words...)
}

// recv returns the next message the peer received.
func (p *ixPeer) recv() []string {
	p.t.Helper()
	l := p.next()
	if l.kind != "msg" {
		p.t.Fatalf("peer %s: got %q line %v, want a message", p.name, l.kind, l.words)
	}
	return l.frames
}

// expect sends a command and checks that its reply is exactly want.
func (p *ixPeer) expect(want []string, cmd ...string) {
	p.t.Helper()
	p.send(cmd...)
	if got := p.recv(); !slices.Equal(got, want) {
		p.t.Fatalf("peer %s: %s -> %s, want %s", p.name, describe(cmd), describe(got), describe(want))
	}
}

var ok = []string{zpipes.ReplyOK}

// expectError sends a command that must be refused with exactly two frames,
// ERROR and a non-empty reason, which it returns.
func (p *ixPeer) expectError(cmd ...string) string {
	p.t.Helper()
	p.send(cmd...)
	got := p.recv()
	if len(got) != 2 || got[0] != zpipes.ReplyError || got[1] == "" {
		p.t.Fatalf("peer %s: %s -> %s, want exactly [\"ERROR\", reason]", p.name, describe(cmd), describe(got))
	}
	return got[1]
}

// quiet checks that no message arrives for d.
func (p *ixPeer) quiet(d time.Duration) {
	p.t.Helper()
	if len(p.backlog) > 0 {
		p.t.Fatalf("peer %s: unexpected %v", p.name, p.backlog[0])
	}
	select {
	case l, ok := <-p.lines:
		if ok {
			p.t.Fatalf("peer %s: unexpected %s line %s while nothing was due", p.name, l.kind, describe(l.frames))
		}
	case <-time.After(d):
	}
}

// recvWithin returns the next message if one arrives within d, else nil.
func (p *ixPeer) recvWithin(d time.Duration) []string {
	p.t.Helper()
	if len(p.backlog) > 0 {
		return p.recv()
	}
	select {
	case l, ok := <-p.lines:
		if !ok || l.kind != "msg" {
			p.t.Fatalf("peer %s: got %q line %v (exited: %v), want a message", p.name, l.kind, l.words, !ok)
		}
		return l.frames
	case <-time.After(d):
		return nil
	}
}

// writes queues n WRITEs of chunks prefix+"%08d" (padded to size) with at
// most window replies outstanding; reads queues n READs the same way.
func (p *ixPeer) writes(pipe string, n int, prefix string, size, window int) {
	p.command("writes", ixEncode(pipe), strconv.Itoa(n), ixEncode(prefix), strconv.Itoa(size), strconv.Itoa(window))
}

func (p *ixPeer) reads(pipe string, n, window int) {
	p.command("reads", ixEncode(pipe), strconv.Itoa(n), strconv.Itoa(window))
}

// expectOKs collects n replies that must all be OK.
func (p *ixPeer) expectOKs(n int) {
	p.t.Helper()
	for i := range n {
		if got := p.recv(); !slices.Equal(got, ok) {
			p.t.Fatalf("peer %s: reply %d of %d is %s, want OK", p.name, i+1, n, describe(got))
		}
	}
}

// collect returns the next n messages, each of which must be one frame.
func (p *ixPeer) collect(n int) []string {
	p.t.Helper()
	out := make([]string, 0, n)
	for range n {
		got := p.recv()
		if len(got) != 1 {
			p.t.Fatalf("peer %s: after %d chunks got %s, want a one-frame chunk", p.name, len(out), describe(got))
		}
		out = append(out, got[0])
	}
	return out
}

// status asks the peer how many messages it sent and received, keeping
// messages that arrive meanwhile for recv.
func (p *ixPeer) status() (sent, received, unsent int) {
	p.t.Helper()
	p.command("status")
	for {
		l := p.nextLive(ixLineTimeout)
		if l.kind != "status" {
			p.backlog = append(p.backlog, l)
			continue
		}
		sent, _ = strconv.Atoi(l.words[0])
		received, _ = strconv.Atoi(l.words[1])
		unsent, _ = strconv.Atoi(l.words[2])
		return
	}
}

// kill SIGKILLs the peer and returns the messages it had printed (that is,
// received) and not yet returned by recv.
func (p *ixPeer) kill() [][]string {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	var got [][]string
	for _, l := range p.backlog {
		if l.kind == "msg" {
			got = append(got, l.frames)
		}
	}
	p.backlog = nil
	timeout := time.After(ixLineTimeout)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return got
			}
			if l.kind == "msg" {
				got = append(got, l.frames)
			}
		case <-timeout:
			p.t.Fatalf("peer %s did not die after SIGKILL", p.name)
		}
	}
}

// quit closes the peer's socket and waits for it to exit successfully.
func (p *ixPeer) quit() {
	p.t.Helper()
	p.command("quit")
	select {
	case <-p.exited:
	case <-time.After(ixLineTimeout):
		p.t.Fatalf("peer %s did not exit after quit", p.name)
	}
	for range p.lines {
	}
	if p.waitErr != nil {
		p.t.Fatalf("peer %s exited with %v; stderr:\n%s", p.name, p.waitErr, p.stderr)
	}
}

// describe renders frames for messages, shortening long ones.
func describe(frames []string) string {
	parts := make([]string, len(frames))
	for i, f := range frames {
		if len(f) > 48 {
			parts[i] = fmt.Sprintf("%q...(%d bytes)", f[:48], len(f))
		} else {
			parts[i] = fmt.Sprintf("%q", f)
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// seq is the chunk peer.py's writes command generates for index i.
func seq(prefix string, i int) string { return fmt.Sprintf("%s%08d", prefix, i) }

// checkSeq checks that got is exactly prefix+%08d for first..first+len-1
// (chunks of a generated size are compared on their index part).
func checkSeq(t *testing.T, what string, got []string, prefix string, first int) {
	t.Helper()
	for i, c := range got {
		want := seq(prefix, first+i)
		if !strings.HasPrefix(c, want) {
			t.Fatalf("%s: chunk %d is %s, want %q (order broken, chunk lost or duplicated)", what, i, describe([]string{c}), want)
		}
	}
}

// ---------------------------------------------------------------------------
// 1. Protocol over a pyzmq DEALER.

func TestInteropProtocolDEALER(t *testing.T) {
	srv := ixStartBroker(t, "proto", zpipes.Options{})
	ep := srv.Endpoint()
	a := ixStartPeer(t, ep, "DEALER", "a")
	b := ixStartPeer(t, ep, "DEALER", "b")

	// Every valid reply, byte-exact.
	a.expect(ok, "OPEN", "p")
	a.expect(ok, "WRITE", "p", "hello")
	a.expect([]string{"hello"}, "READ", "p")
	a.expect(ok, "CLOSE", "p")
	if st := srv.Stats(); st.Pipes != 0 || st.Chunks != 0 {
		t.Fatalf("after CLOSE of an empty pipe: %+v, want no pipes", st)
	}

	// Every kind of invalid command: exactly [ERROR, reason], no effect,
	// and the connection keeps being served.
	a.expect(ok, "OPEN", "p")
	b.expect(ok, "OPEN", "shared")
	b.expect(ok, "WRITE", "shared", "b's chunk")
	invalid := []struct {
		name  string
		frame []string
	}{
		{"unknown command", []string{"FETCH", "p"}},
		{"lower-case open", []string{"open", "p"}},
		{"lower-case close", []string{"close", "p"}},
		{"lower-case read", []string{"read", "p"}},
		{"lower-case write", []string{"write", "p", "x"}},
		{"mixed-case Open", []string{"Open", "p"}},
		{"command with trailing NUL", []string{"OPEN\x00", "p"}},
		{"OPEN without pipe", []string{"OPEN"}},
		{"CLOSE without pipe", []string{"CLOSE"}},
		{"READ without pipe", []string{"READ"}},
		{"WRITE without pipe", []string{"WRITE"}},
		{"OPEN empty pipe name", []string{"OPEN", ""}},
		{"CLOSE empty pipe name", []string{"CLOSE", ""}},
		{"READ empty pipe name", []string{"READ", ""}},
		{"WRITE empty pipe name", []string{"WRITE", "", "x"}},
		{"WRITE without chunk", []string{"WRITE", "p"}},
		{"OPEN extra frame", []string{"OPEN", "p2", "x"}},
		{"CLOSE extra frame", []string{"CLOSE", "p", "x"}},
		{"READ extra frame", []string{"READ", "p", "x"}},
		{"WRITE extra frame", []string{"WRITE", "p", "x", "y"}},
		{"WRITE extra empty frame", []string{"WRITE", "p", "x", ""}},
		{"READ pipe never opened", []string{"READ", "nowhere"}},
		{"WRITE pipe never opened", []string{"WRITE", "nowhere", "x"}},
		{"CLOSE pipe never opened", []string{"CLOSE", "nowhere"}},
		{"READ pipe opened by another connection", []string{"READ", "shared"}},
		{"WRITE pipe opened by another connection", []string{"WRITE", "shared", "x"}},
		{"CLOSE pipe opened by another connection", []string{"CLOSE", "shared"}},
	}
	for _, c := range invalid {
		reason := a.expectError(c.frame...)
		t.Logf("%-40s -> ERROR %q", c.name, reason)
		a.expect(ok, "WRITE", "p", "alive after "+c.name) // still served
	}
	// None of the refused commands queued, took or opened anything: p
	// holds exactly the liveness chunks, shared still holds b's chunk,
	// and p2 was not opened.
	if st := srv.Stats(); st.Chunks != len(invalid)+1 || st.Pipes != 2 {
		t.Fatalf("after the refused commands: %+v, want %d chunks in 2 pipes", st, len(invalid)+1)
	}
	b.expect([]string{"b's chunk"}, "READ", "shared")
	for _, c := range invalid {
		a.expect([]string{"alive after " + c.name}, "READ", "p")
	}

	// After CLOSE the pipe is no longer open on the connection.
	a.expect(ok, "CLOSE", "p")
	a.expectError("WRITE", "p", "x")
	a.expectError("READ", "p")

	// One reader per pipe: b's READ is refused while a holds the role
	// (with a READ waiting and also with none), b still writes, and the
	// role is free once a CLOSEs.
	a.expect(ok, "OPEN", "r")
	b.expect(ok, "OPEN", "r")
	b.expect(ok, "WRITE", "r", "first")
	a.expect([]string{"first"}, "READ", "r") // a is the reader now
	a.send("READ", "r")                      // waits: r is empty
	a.quiet(100 * time.Millisecond)
	t.Logf("second reader refused: %q", b.expectError("READ", "r"))
	b.expect(ok, "WRITE", "r", "to a")
	if got := a.recv(); !slices.Equal(got, []string{"to a"}) {
		t.Fatalf("waiting READ got %s, want [\"to a\"]", describe(got))
	}
	b.expectError("READ", "r") // a is still the reader without a READ pending
	a.expect(ok, "CLOSE", "r")
	b.expect(ok, "WRITE", "r", "to b")
	b.expect([]string{"to b"}, "READ", "r")
	b.expect(ok, "CLOSE", "r")

	// Replies keep command order: a READ that waits holds back the replies
	// to the commands pipelined after it, valid or not.
	a.expect(ok, "OPEN", "o")
	a.send("READ", "o")
	a.send("NOPE", "o")
	a.send("OPEN", "o2")
	a.send("WRITE", "o2", "x")
	a.quiet(200 * time.Millisecond)
	b.expect(ok, "OPEN", "o")
	b.expect(ok, "WRITE", "o", "first")
	if got := a.recv(); !slices.Equal(got, []string{"first"}) {
		t.Fatalf("reply 1 = %s, want the chunk", describe(got))
	}
	if got := a.recv(); len(got) != 2 || got[0] != "ERROR" {
		t.Fatalf("reply 2 = %s, want [ERROR, reason]", describe(got))
	}
	if got := a.recv(); !slices.Equal(got, ok) {
		t.Fatalf("reply 3 = %s, want OK", describe(got))
	}
	if got := a.recv(); !slices.Equal(got, ok) {
		t.Fatalf("reply 4 = %s, want OK", describe(got))
	}

	// A DEALER may send a REQ-style empty delimiter; it is echoed.
	a.expect([]string{"", "OK"}, "", "OPEN", "env")
	a.expect([]string{"", "OK"}, "", "WRITE", "env", "")
	a.expect([]string{"", ""}, "", "READ", "env")
	a.send("", "READ", "nowhere")
	if got := a.recv(); len(got) != 3 || got[0] != "" || got[1] != zpipes.ReplyError || got[2] == "" {
		t.Fatalf("invalid command after an empty delimiter got %s, want [\"\", \"ERROR\", reason]", describe(got))
	}
}

// ---------------------------------------------------------------------------
// 2. pyzmq REQ clients.

func TestInteropREQ(t *testing.T) {
	srv := ixStartBroker(t, "req", zpipes.Options{})
	r := ixStartPeer(t, srv.Endpoint(), "REQ", "req")
	w := ixStartPeer(t, srv.Endpoint(), "REQ", "req-writer")

	r.expect(ok, "OPEN", "q")
	w.expect(ok, "OPEN", "q")
	for _, c := range []string{"one", "", "\x00two", "OK"} {
		w.expect(ok, "WRITE", "q", c)
	}
	for _, c := range []string{"one", "", "\x00two", "OK"} {
		r.expect([]string{c}, "READ", "q")
	}
	// Invalid commands over REQ: exactly [ERROR, reason] after REQ strips
	// the envelope, and the socket keeps working.
	r.expectError("READ", "unopened")
	r.expectError("open", "q")
	r.expectError("WRITE", "q")
	// A READ over REQ waits for a chunk written later by another client.
	r.send("READ", "q")
	r.quiet(100 * time.Millisecond)
	w.expect(ok, "WRITE", "q", "later")
	if got := r.recv(); !slices.Equal(got, []string{"later"}) {
		t.Fatalf("waiting REQ READ got %s", describe(got))
	}
	r.expect(ok, "CLOSE", "q")
	w.expect(ok, "CLOSE", "q")
	ixWaitStats(t, srv, "pipe released", func(st zpipes.Stats) bool { return st.Pipes == 0 })
}

// ---------------------------------------------------------------------------
// 3. A C client linked against libzmq.

func hexCmd(frames ...string) string {
	parts := make([]string, len(frames))
	for i, f := range frames {
		parts[i] = hex.EncodeToString([]byte(f))
	}
	return strings.Join(parts, ",")
}

// runC runs the C client and returns its reply lines, each decoded into frames.
func runC(t *testing.T, bin string, args ...string) [][]string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("zpipes_client: %v\n%s", err, stderr.String())
	}
	var replies [][]string
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		var frames []string
		for _, h := range strings.Split(line, ",") {
			b, err := hex.DecodeString(h)
			if err != nil {
				t.Fatalf("zpipes_client output %q: %v", line, err)
			}
			frames = append(frames, string(b))
		}
		replies = append(replies, frames)
	}
	return replies
}

func TestInteropCClient(t *testing.T) {
	bin := ixBuildCClient(t)
	srv := ixStartBroker(t, "c", zpipes.Options{})
	ep := srv.Endpoint()
	chunks := []string{
		"plain text",
		"\x00",
		"a\x00b\x00\x00c",
		"\x00\xff\xfe\x00\x01",
		"",
		"OK",
		"ERROR",
		strings.Repeat("\x00\x01", 25000), // 50,000 bytes, half NUL
	}

	// A C writer pipelines its chunks, closes and exits.
	args := []string{"-p", ep, hexCmd("OPEN", "cpipe")}
	for _, c := range chunks {
		args = append(args, hexCmd("WRITE", "cpipe", c))
	}
	args = append(args, hexCmd("CLOSE", "cpipe"))
	for i, r := range runC(t, bin, args...) {
		if !slices.Equal(r, ok) {
			t.Fatalf("C writer: reply %d is %s, want OK", i, describe(r))
		}
	}
	ixWaitStats(t, srv, "the C writer's chunks queued", func(st zpipes.Stats) bool {
		return st.Chunks == len(chunks) && st.Clients == 0
	})

	// A C reader reads them back byte-exact, and an invalid command from C
	// gets [ERROR, reason].
	args = []string{ep, hexCmd("OPEN", "cpipe")}
	for range chunks {
		args = append(args, hexCmd("READ", "cpipe"))
	}
	args = append(args, hexCmd("open", "cpipe"), hexCmd("CLOSE", "cpipe"))
	replies := runC(t, bin, args...)
	if len(replies) != len(chunks)+3 {
		t.Fatalf("C reader: %d replies, want %d", len(replies), len(chunks)+3)
	}
	for i, c := range chunks {
		if got := replies[1+i]; !slices.Equal(got, []string{c}) {
			t.Fatalf("C reader: chunk %d is %s, want %s", i, describe(got), describe([]string{c}))
		}
	}
	if bad := replies[len(chunks)+1]; len(bad) != 2 || bad[0] != "ERROR" || bad[1] == "" {
		t.Fatalf("C client: invalid command got %s, want [ERROR, reason]", describe(bad))
	}

	// Across languages: pyzmq writes, C reads.
	w := ixStartPeer(t, ep, "DEALER", "py-writer")
	w.expect(ok, "OPEN", "mixed")
	w.expect(ok, "WRITE", "mixed", "from\x00python")
	if got := runC(t, bin, ep, hexCmd("OPEN", "mixed"), hexCmd("READ", "mixed")); !slices.Equal(got[1], []string{"from\x00python"}) {
		t.Fatalf("C read %s", describe(got[1]))
	}
}

// ---------------------------------------------------------------------------
// 4. Chunks are opaque; pipe names are byte strings up to 255 bytes.

func TestInteropOpaqueChunksAndNames(t *testing.T) {
	srv := ixStartBroker(t, "opaque", zpipes.Options{})
	ep := srv.Endpoint()
	w := ixStartPeer(t, ep, "DEALER", "writer")
	r := ixStartPeer(t, ep, "DEALER", "reader")

	big := make([]byte, 16<<20)
	rng := mrand.NewChaCha8([32]byte{1})
	rng.Read(big)
	for i := 0; i < len(big); i += 4096 {
		big[i] = 0
	}
	chunks := []string{"", "\x00", "\x00\x00\x00", "OK", "ERROR", "READ", "\x00OK\x00", "\xff\xfe", string(big), "tail"}
	w.expect(ok, "OPEN", "blobs")
	for _, c := range chunks {
		w.send("WRITE", "blobs", c)
	}
	w.expectOKs(len(chunks))
	r.expect(ok, "OPEN", "blobs")
	for i, c := range chunks {
		r.send("READ", "blobs")
		got := r.recv()
		if len(got) != 1 || got[0] != c {
			t.Fatalf("chunk %d: read %s, wrote %s", i, describe(got), describe([]string{c}))
		}
	}

	// Names: 255 arbitrary bytes (NUL, 0xff) work and are not truncated;
	// 256 bytes and the empty name are refused.
	name := make([]byte, 255) // the README's limit, not the constant under test
	for i := range name {
		name[i] = byte(i)
	}
	nameA := string(name)
	name[len(name)-1] = 'B'
	nameB := string(name)
	for _, n := range []string{nameA, nameB} {
		w.expect(ok, "OPEN", n)
		r.expect(ok, "OPEN", n)
	}
	w.expect(ok, "WRITE", nameA, "in A")
	w.expect(ok, "WRITE", nameB, "in B")
	r.expect([]string{"in B"}, "READ", nameB)
	r.expect([]string{"in A"}, "READ", nameA)
	r.expect(ok, "CLOSE", nameA)
	w.expectError("OPEN", nameA+"x")
	w.expectError("OPEN", "")
	w.expectError("WRITE", "", "x")
}

// ---------------------------------------------------------------------------
// 5. Fair queuing between writers.

func TestInteropFairQueuing(t *testing.T) {
	srv := ixStartBroker(t, "fair", zpipes.Options{})
	ep := srv.Endpoint()
	a := ixStartPeer(t, ep, "DEALER", "heavy")
	b := ixStartPeer(t, ep, "DEALER", "light")
	r := ixStartPeer(t, ep, "DEALER", "reader")

	const heavy = 5000
	a.expect(ok, "OPEN", "fair")
	a.writes("fair", heavy, "A", 0, 1000)
	a.expectOKs(heavy)
	b.expect(ok, "OPEN", "fair")
	b.expect(ok, "WRITE", "fair", "B-only")
	if st := srv.Stats(); st.Chunks != heavy+1 {
		t.Fatalf("queued %d chunks, want %d", st.Chunks, heavy+1)
	}

	r.expect(ok, "OPEN", "fair")
	r.reads("fair", heavy+1, 500)
	got := r.collect(heavy + 1)
	at := slices.Index(got, "B-only")
	if at < 0 || at > 2 {
		t.Fatalf("the light writer's chunk was read at position %d (0-based), want within the first 3 reads: a heavy writer must not block a light one", at)
	}
	t.Logf("light writer's chunk read at position %d of %d", at, len(got))
	checkSeq(t, "heavy writer's chunks", slices.Delete(got, at, at+1), "A", 0)
}

// A writer held back by a full pipe does not hold back a light writer: the
// light writer's WRITE is acknowledged while the heavy one still waits for
// its OKs, and its chunk is read among the first.
func TestInteropFairQueuingUnderBackpressure(t *testing.T) {
	srv := ixStartBroker(t, "fairfull", zpipes.Options{PipeLimit: 1 << 20})
	ep := srv.Endpoint()
	a := ixStartPeer(t, ep, "DEALER", "heavy")
	b := ixStartPeer(t, ep, "DEALER", "light")
	r := ixStartPeer(t, ep, "DEALER", "reader")
	const size, n = 64 << 10, 64 // 4 MiB into a 1 MiB pipe
	a.expect(ok, "OPEN", "full")
	a.writes("full", n, "A", size, n)
	ixWaitStats(t, srv, "the heavy writer held back", func(st zpipes.Stats) bool { return st.Stalled > 0 })
	b.expect(ok, "OPEN", "full")
	b.send("WRITE", "full", "B-only")
	if got := b.recvWithin(2 * time.Second); !slices.Equal(got, ok) {
		if got == nil {
			t.Fatalf("the light writer's WRITE got no OK within 2s while the heavy writer was held back: a heavy writer must not block a light one")
		}
		t.Fatalf("the light writer's WRITE got %s, want OK", describe(got))
	}
	_, acked, _ := a.status()
	if acked-1 >= n {
		t.Fatalf("the heavy writer got all %d OKs into a 1 MiB pipe: no backpressure", n)
	}
	r.expect(ok, "OPEN", "full")
	r.reads("full", n+1, 8)
	got := r.collect(n + 1)
	at := slices.Index(got, "B-only")
	if at < 0 || at > 2 {
		t.Fatalf("the light writer's chunk was read at position %d, want within the first 3", at)
	}
	checkSeq(t, "heavy writer's chunks", slices.Delete(got, at, at+1), "A", 0)
	a.expectOKs(n)
}

// ---------------------------------------------------------------------------
// 6. A reader killed while its READ waits.

func TestInteropKilledReader(t *testing.T) {
	srv := ixStartBroker(t, "killed", zpipes.Options{})
	ep := srv.Endpoint()
	w := ixStartPeer(t, ep, "DEALER", "writer")
	w.expect(ok, "OPEN", "k")
	r1 := ixStartPeer(t, ep, "DEALER", "reader-1")
	r1.expect(ok, "OPEN", "k")
	w.expect(ok, "WRITE", "k", "warm-up")
	r1.expect([]string{"warm-up"}, "READ", "k") // r1 is the reader now
	r1.send("READ", "k")                        // waits on the empty pipe
	ixWait(t, 5*time.Second, "reader 1 to send its READ", func() bool {
		sent, _, _ := r1.status()
		return sent == 3
	})
	time.Sleep(50 * time.Millisecond) // the broker takes it in
	w.expectError("READ", "k")        // r1 holds the reader role
	before := srv.Stats().Clients

	killed := time.Now()
	if got := r1.kill(); len(got) != 0 {
		t.Fatalf("reader 1 received %s from an empty pipe", describe(got[0]))
	}
	ixWaitStats(t, srv, "the broker to notice the killed reader", func(st zpipes.Stats) bool { return st.Clients == before-1 })
	noticed := time.Since(killed)
	t.Logf("killed reader noticed after %v", noticed)
	if noticed > time.Second {
		t.Errorf("the broker took %v to notice a killed reader, want it at once", noticed)
	}

	w.expect(ok, "WRITE", "k", "precious")
	if st := srv.Stats(); st.Chunks != 1 {
		t.Fatalf("after the write: %+v, want the chunk queued (the dead reader's READ must not take it)", st)
	}
	r2 := ixStartPeer(t, ep, "DEALER", "reader-2")
	r2.expect(ok, "OPEN", "k")
	r2.expect([]string{"precious"}, "READ", "k")
}

// A reader that pipelines more READs than the broker reads ahead
// (PendingLimit) has the rest still unread in its socket when it is
// killed; the broker must notice its death all the same and release the
// reader role.
func TestInteropKilledReaderWithManyPipelinedReads(t *testing.T) {
	// About 1,000 waiting READs fit in 256 KiB; the reader sends 1,500.
	srv := ixStartBroker(t, "killedmany", zpipes.Options{PendingLimit: 256 << 10})
	ep := srv.Endpoint()
	const reads = 1500
	r1 := ixStartPeer(t, ep, "DEALER", "reader-1")
	r1.expect(ok, "OPEN", "k")
	r1.reads("k", reads, reads)
	ixWait(t, 5*time.Second, "reader 1 to send its READs", func() bool {
		sent, _, _ := r1.status()
		return sent == reads+1
	})
	time.Sleep(100 * time.Millisecond) // let the broker read up to its bound
	before := srv.Stats().Clients
	killed := time.Now()
	r1.kill()
	var st zpipes.Stats
	for time.Since(killed) < 2*time.Second {
		if st = srv.Stats(); st.Clients < before {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st.Clients >= before {
		t.Errorf("2s after SIGKILL the broker still counts the dead reader as connected (%+v)", st)
	} else {
		t.Logf("killed reader noticed after %v", time.Since(killed))
	}
	r2 := ixStartPeer(t, ep, "DEALER", "reader-2")
	r2.expect(ok, "OPEN", "k")
	r2.send("READ", "k")
	if got := r2.recvWithin(200 * time.Millisecond); got != nil {
		t.Fatalf("a new reader's READ on the empty pipe got %s instead of waiting: the killed reader still holds the reader role", describe(got))
	}
	w := ixStartPeer(t, ep, "DEALER", "writer")
	w.expect(ok, "OPEN", "k")
	w.expect(ok, "WRITE", "k", "for r2")
	if got := r2.recv(); !slices.Equal(got, []string{"for r2"}) {
		t.Fatalf("new reader got %s, want the chunk", describe(got))
	}
}

// ---------------------------------------------------------------------------
// 7. Pipes and chunks survive application restarts.

func TestInteropSurvivesRestart(t *testing.T) {
	for _, how := range []string{"writer closes and exits", "writer killed after its OKs"} {
		t.Run(how, func(t *testing.T) {
			srv := ixStartBroker(t, "restart", zpipes.Options{})
			ep := srv.Endpoint()
			w := ixStartPeer(t, ep, "DEALER", "writer")
			w.expect(ok, "OPEN", "durable")
			w.writes("durable", 100, "R", 100, 100)
			w.expectOKs(100)
			if how == "writer closes and exits" {
				w.expect(ok, "CLOSE", "durable")
				w.quit()
			} else {
				w.kill()
			}
			st := ixWaitStats(t, srv, "the writer gone", func(st zpipes.Stats) bool { return st.Clients == 0 })
			if st.Pipes != 1 || st.Chunks != 100 {
				t.Fatalf("with no application running: %+v, want 1 pipe holding 100 chunks", st)
			}

			r := ixStartPeer(t, ep, "DEALER", "reader")
			r.expect(ok, "OPEN", "durable")
			r.reads("durable", 100, 100)
			got := r.collect(100)
			checkSeq(t, "chunks read after the writer left", got, "R", 0)
			for i, c := range got {
				if len(c) != 100 {
					t.Fatalf("chunk %d has %d bytes, want 100", i, len(c))
				}
			}
			r.expect(ok, "CLOSE", "durable")
			r.quit()
			ixWaitStats(t, srv, "the closed, empty pipe released", func(st zpipes.Stats) bool {
				return st.Pipes == 0 && st.Chunks == 0 && st.QueuedBytes == 0 && st.Clients == 0
			})
		})
	}
}

// ---------------------------------------------------------------------------
// 8. Pipelining.

func TestInteropPipelining(t *testing.T) {
	const n = 20000
	run := func(t *testing.T, write func(w *ixPeer)) {
		srv := ixStartBroker(t, "pipeline", zpipes.Options{})
		ep := srv.Endpoint()
		w := ixStartPeer(t, ep, "DEALER", "writer")
		w.expect(ok, "OPEN", "pl")
		write(w)
		r := ixStartPeer(t, ep, "DEALER", "reader")
		r.expect(ok, "OPEN", "pl")
		r.reads("pl", n, 1000)
		checkSeq(t, "pipelined chunks", r.collect(n), "P", 0)
		if st := srv.Stats(); st.Chunks != 0 {
			t.Fatalf("after reading everything: %+v", st)
		}
	}
	// Up to 1000 commands in flight, replies read as they come.
	t.Run("window of 1000", func(t *testing.T) {
		run(t, func(w *ixPeer) {
			w.writes("pl", n, "P", 0, 1000)
			w.expectOKs(n)
		})
	})
	// Every WRITE sent before the first reply is read (libzmq's own queues
	// hold 1000 messages each way).
	t.Run("all sent before any reply is read", func(t *testing.T) {
		run(t, func(w *ixPeer) {
			w.command("blast", ixEncode("pl"), strconv.Itoa(n), ixEncode("P"))
			l := w.next()
			if l.kind != "blast" || l.words[0] != strconv.Itoa(n) {
				t.Fatalf("pipelined %d WRITEs: got %s %v, want %d OKs (words: OKs, first bad reply)", n, l.kind, l.words, n)
			}
		})
	})
}

// ---------------------------------------------------------------------------
// 9 and 10. The zbroker binary.

type ixBrokerProc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stderr *testsupport.Buffer
	done   chan struct{}
	err    error
}

func ixStartBinary(t *testing.T, bin string, args ...string) *ixBrokerProc {
	t.Helper()
	b := &ixBrokerProc{t: t, name: args[len(args)-1], stderr: &testsupport.Buffer{}, done: make(chan struct{})}
	b.cmd = exec.Command(bin, args...)
	b.cmd.Stderr = b.stderr
	b.cmd.Stdout = b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		b.err = b.cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(func() {
		select {
		case <-b.done:
		default:
			b.cmd.Process.Kill()
			<-b.done
		}
		if t.Failed() {
			t.Logf("zbroker %s output:\n%s", b.name, tail(b.stderr.String(), 40))
		}
	})
	return b
}

func (b *ixBrokerProc) waitStarted() {
	b.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.stderr.String(), "zbroker ready") {
		select {
		case <-b.done:
			b.t.Fatalf("zbroker exited (%v) before starting:\n%s", b.err, b.stderr)
		default:
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("zbroker did not log \"zbroker ready\" within 10s:\n%s", b.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exitCode waits for the process to end and returns its exit status.
func (b *ixBrokerProc) exitCode(timeout time.Duration) int {
	b.t.Helper()
	select {
	case <-b.done:
	case <-time.After(timeout):
		b.t.Fatalf("zbroker still running after %v:\n%s", timeout, b.stderr)
	}
	var ee *exec.ExitError
	if errors.As(b.err, &ee) {
		return ee.ExitCode()
	}
	if b.err != nil {
		b.t.Fatal(b.err)
	}
	return 0
}

// procStatusKiB reads a field like VmRSS or VmHWM of /proc/PID/status.
func procStatusKiB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading the broker's memory use: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, found := strings.CutPrefix(line, field+":"); found {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("/proc/%d/status %s: %v", pid, line, err)
			}
			return n
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return 0
}

func TestInteropFloodStaysWithinMemoryLimits(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/PID/status")
	}
	ixPythonPath(t)
	bin := testsupport.BuildBroker(t)
	const (
		pipeLimit  = 8 << 20
		totalLimit = 16 << 20
		chunkSize  = 64 << 10
		cost       = chunkSize + 64 // what the broker charges per chunk
		floodEach  = (1 << 30) / chunkSize / 3
		window     = 256 // 16 MiB in flight per writer
		rssBound   = (totalLimit + 96<<20) >> 10
	)
	name := ixName("flood")
	b := ixStartBinary(t, bin, "--pipe-limit", "8MiB", "--total-limit", "16MiB", name)
	b.waitStarted()
	pid := b.cmd.Process.Pid
	ep := zpipes.Endpoint(name)

	// Three writers flood three pipes nobody reads, 1 GiB in all: the
	// pipe limit holds back each pipe, the total limit all of them.
	pipes := []string{"f0", "f1", "f2"}
	var writers []*ixPeer
	for i, p := range pipes {
		w := ixStartPeer(t, ep, "DEALER", "flooder-"+p)
		w.expect(ok, "OPEN", p)
		w.writes(p, floodEach, fmt.Sprintf("W%d-", i), chunkSize, window)
		writers = append(writers, w)
	}

	var maxRSS int64
	sample := func() {
		if rss := procStatusKiB(t, pid, "VmRSS"); rss > maxRSS {
			maxRSS = rss
		}
	}
	// Wait until no writer has received an OK for a second while each has
	// its window full (backpressure), or has sent everything (none).
	acked := make([]int, len(writers))
	sent := make([]int, len(writers))
	lastChange := time.Now()
	start := time.Now()
	settled := func() bool {
		if time.Since(lastChange) < time.Second {
			return false
		}
		for i := range writers {
			if sent[i]-acked[i] != window && sent[i] != floodEach {
				return false
			}
		}
		return true
	}
	for !settled() {
		sample()
		if time.Since(start) > 15*time.Second {
			t.Fatalf("the writers neither stalled nor finished within 15s (sent %v, acked %v chunks of %d each)", sent, acked, floodEach)
		}
		for i, w := range writers {
			s, r, _ := w.status()
			s, r = s-1, r-1 // minus OPEN
			if s != sent[i] || r != acked[i] {
				sent[i], acked[i], lastChange = s, r, time.Now()
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i, w := range writers {
		w.command("stop")
		s, r, _ := w.status()
		sent[i], acked[i] = s-1, r-1
	}
	sample()
	t.Logf("stalled after %v: WRITEs sent %v, OKs %v; broker VmRSS peak %d KiB", time.Since(start), sent, acked, maxRSS)

	totalAcked := 0
	for i := range writers {
		totalAcked += acked[i]
		if int64(acked[i])*cost > pipeLimit+cost {
			t.Errorf("pipe %s: %d chunks (%d bytes) acknowledged, over the 8 MiB pipe limit", pipes[i], acked[i], int64(acked[i])*cost)
		}
		if sent[i] <= acked[i] {
			t.Errorf("pipe %s: every WRITE sent (%d) was acknowledged: no OK was withheld", pipes[i], sent[i])
		}
	}
	if int64(totalAcked)*cost > totalLimit+cost {
		t.Errorf("%d chunks (%d bytes) acknowledged in all, over the 16 MiB total limit", totalAcked, int64(totalAcked)*cost)
	}
	if totalAcked*chunkSize < totalLimit/2 {
		t.Errorf("only %d chunks acknowledged before the stall; the limits should admit ~16 MiB", totalAcked)
	}

	// Readers drain the pipes: the withheld OKs all arrive, and every
	// chunk sent is read exactly once, in its writer's order.
	for i, p := range pipes {
		r := ixStartPeer(t, ep, "DEALER", "drainer-"+p)
		r.expect(ok, "OPEN", p)
		r.reads(p, sent[i], 64)
		got := r.collect(sent[i])
		sample()
		checkSeq(t, "drained "+p, got, fmt.Sprintf("W%d-", i), 0)
		for _, c := range got {
			if len(c) != chunkSize {
				t.Fatalf("drained a chunk of %d bytes, want %d", len(c), chunkSize)
			}
		}
		writers[i].expectOKs(sent[i])   // the withheld OKs arrive too
		r.quiet(200 * time.Millisecond) // nothing more: no chunk read twice
		r.quit()
	}
	for _, w := range writers {
		w.quit()
	}
	hwm := procStatusKiB(t, pid, "VmHWM")
	t.Logf("broker memory: VmRSS sampled peak %d KiB, VmHWM %d KiB (bound %d KiB)", maxRSS, hwm, int64(rssBound))
	if hwm > rssBound || maxRSS > rssBound {
		t.Errorf("broker peak RSS %d KiB exceeds the total limit + 96 MiB (%d KiB)", max(hwm, maxRSS), int64(rssBound))
	}

	b.cmd.Process.Signal(syscall.SIGTERM)
	if code := b.exitCode(10 * time.Second); code != 0 {
		t.Fatalf("zbroker exit status %d after SIGTERM, want 0", code)
	}
	if log := b.stderr.String(); !strings.Contains(log, "discarded_chunks=0 ") {
		t.Fatalf("after draining everything the stop log should report discarded_chunks=0:\n%s", log)
	}
}

func TestInteropBinaryLifecycle(t *testing.T) {
	bin := testsupport.BuildBroker(t)

	t.Run("help", func(t *testing.T) {
		out, err := exec.Command(bin, "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("zbroker --help: %v\n%s", err, out)
		}
		if !bytes.Contains(out, []byte("usage: zbroker")) || !bytes.Contains(out, []byte("-pipe-limit")) {
			t.Fatalf("zbroker --help printed no usage:\n%s", out)
		}
	})

	t.Run("bad flag", func(t *testing.T) {
		err := exec.Command(bin, "--no-such-flag", ixName("bad")).Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Fatalf("zbroker with an unknown flag: %v, want a non-zero exit", err)
		}
	})

	t.Run("name in use", func(t *testing.T) {
		name := ixName("dup")
		first := ixStartBinary(t, bin, name)
		first.waitStarted()
		second := ixStartBinary(t, bin, "-v", name)
		if code := second.exitCode(10 * time.Second); code != 1 {
			t.Fatalf("second broker named %q exited %d, want 1; output:\n%s", name, code, second.stderr)
		}
		if msg := second.stderr.String(); !strings.Contains(msg, "already running") || !strings.Contains(msg, name) {
			t.Fatalf("second broker's message does not say %q is already running:\n%s", name, msg)
		}
		// The first broker is unaffected.
		p := ixStartPeer(t, zpipes.Endpoint(name), "DEALER", "client")
		p.expect(ok, "OPEN", "still")
		p.quit()
		first.cmd.Process.Signal(syscall.SIGINT)
		if code := first.exitCode(10 * time.Second); code != 0 {
			t.Fatalf("SIGINT: exit %d, want 0", code)
		}
	})

	// -v, --endpoint and --max-chunk: the broker serves the given endpoint,
	// logs connections, and disconnects only the client whose message is
	// over --max-chunk, without queueing its chunk.
	t.Run("flags", func(t *testing.T) {
		name := ixName("flags")
		ep := "ipc://@" + ixName("endpoint")
		b := ixStartBinary(t, bin, "-v", "--endpoint", ep, "--max-chunk", "4KiB", "--pending-limit", "2KiB", name)
		b.waitStarted()
		good := ixStartPeer(t, ep, "DEALER", "good")
		good.expect(ok, "OPEN", "p")
		good.expect(ok, "WRITE", "p", strings.Repeat("x", 1000))
		big := ixStartPeer(t, ep, "DEALER", "oversize")
		big.expect(ok, "OPEN", "p")
		big.send("WRITE", "p", strings.Repeat("y", 64<<10))
		if got := big.recvWithin(300 * time.Millisecond); got != nil {
			t.Fatalf("a WRITE over --max-chunk got %s, want the client disconnected", describe(got))
		}
		good.expect(ok, "OPEN", "q") // the other client is still served
		good.expect([]string{strings.Repeat("x", 1000)}, "READ", "p")
		good.quit()
		big.quit()
		b.cmd.Process.Signal(syscall.SIGTERM)
		if code := b.exitCode(10 * time.Second); code != 0 {
			t.Fatalf("SIGTERM: exit %d, want 0", code)
		}
		log := b.stderr.String()
		for _, want := range []string{"peer connected", ep, "discarded_chunks=0 "} {
			if !strings.Contains(log, want) {
				t.Errorf("broker log lacks %q:\n%s", want, log)
			}
		}
	})

	t.Run("SIGTERM reports discarded chunks", func(t *testing.T) {
		name := ixName("term")
		b := ixStartBinary(t, bin, name)
		b.waitStarted()
		w := ixStartPeer(t, zpipes.Endpoint(name), "DEALER", "writer")
		w.expect(ok, "OPEN", "left")
		for i := range 3 {
			w.expect(ok, "WRITE", "left", fmt.Sprint("unread ", i))
		}
		w.quit()
		b.cmd.Process.Signal(syscall.SIGTERM)
		if code := b.exitCode(10 * time.Second); code != 0 {
			t.Fatalf("SIGTERM: exit %d, want 0", code)
		}
		log := b.stderr.String()
		if !strings.Contains(log, "zbroker stopped") || !strings.Contains(log, "discarded_chunks=3 ") {
			t.Fatalf("stop log should say zbroker stopped ... discarded_chunks=3:\n%s", log)
		}
	})
}

// ---------------------------------------------------------------------------
// 11. A reader killed with READs pipelined.

func TestInteropReaderKilledWithPipelinedReads(t *testing.T) {
	// Deterministic: the reader gets 40 chunks, has 60 more READs
	// pending on the now empty pipe, and is killed; the 60 chunks written
	// afterwards all go to the next reader.
	t.Run("pending on empty pipe", func(t *testing.T) {
		srv := ixStartBroker(t, "pending", zpipes.Options{})
		ep := srv.Endpoint()
		w := ixStartPeer(t, ep, "DEALER", "writer")
		w.expect(ok, "OPEN", "k")
		w.writes("k", 40, "K", 0, 40)
		w.expectOKs(40)

		r1 := ixStartPeer(t, ep, "DEALER", "reader-1")
		r1.expect(ok, "OPEN", "k")
		r1.reads("k", 100, 100)
		first := r1.collect(40)
		checkSeq(t, "reader 1", first, "K", 0)
		ixWait(t, 5*time.Second, "reader 1 to send all its READs", func() bool {
			sent, _, _ := r1.status()
			return sent == 101
		})
		time.Sleep(50 * time.Millisecond)
		before := srv.Stats().Clients
		if more := r1.kill(); len(more) != 0 {
			t.Fatalf("reader 1 received %d chunks from an empty pipe", len(more))
		}
		ixWaitStats(t, srv, "the killed reader noticed", func(st zpipes.Stats) bool { return st.Clients == before-1 })

		// Writes after the death: the 60 dead READs must take none.
		for i := 40; i < 100; i++ {
			w.send("WRITE", "k", seq("K", i))
		}
		w.expectOKs(60)
		if st := srv.Stats(); st.Chunks != 60 {
			t.Fatalf("after 60 writes: %+v, want all 60 queued", st)
		}
		r2 := ixStartPeer(t, ep, "DEALER", "reader-2")
		r2.expect(ok, "OPEN", "k")
		r2.reads("k", 60, 60)
		checkSeq(t, "reader 2", r2.collect(60), "K", 40)
	})

	// A chunk the broker took for the reader but could not send yet, its
	// reply being queued behind an earlier READ that still waits, goes
	// back to its pipe when the reader dies.
	t.Run("chunk held behind a waiting READ", func(t *testing.T) {
		srv := ixStartBroker(t, "heldbehind", zpipes.Options{})
		ep := srv.Endpoint()
		w := ixStartPeer(t, ep, "DEALER", "writer")
		w.expect(ok, "OPEN", "y")
		w.expect(ok, "WRITE", "y", "Y0")
		w.expect(ok, "WRITE", "y", "Y1")
		r1 := ixStartPeer(t, ep, "DEALER", "reader-1")
		r1.expect(ok, "OPEN", "x")
		r1.expect(ok, "OPEN", "y")
		r1.send("READ", "x") // waits: x is empty
		r1.send("READ", "y") // takes Y0, whose reply must wait for x's
		ixWaitStats(t, srv, "reader 1 to take Y0", func(st zpipes.Stats) bool { return st.Chunks == 1 })
		if got := r1.recvWithin(100 * time.Millisecond); got != nil {
			t.Fatalf("reader 1 got %s before its first READ was answered", describe(got))
		}
		r1.kill()
		ixWaitStats(t, srv, "Y0 back in its pipe", func(st zpipes.Stats) bool { return st.Clients == 1 && st.Chunks == 2 })
		r2 := ixStartPeer(t, ep, "DEALER", "reader-2")
		r2.expect(ok, "OPEN", "y")
		r2.expect([]string{"Y0"}, "READ", "y")
		r2.expect([]string{"Y1"}, "READ", "y")
	})

	// Chunks flowing while the reader dies: whatever it printed is a prefix
	// of the stream, the next reader gets a contiguous suffix in order, and
	// only chunks the broker may already have written into the dead
	// reader's socket (at most its 100 READs) can be missing between.
	t.Run("chunks flowing", func(t *testing.T) {
		srv := ixStartBroker(t, "flowing", zpipes.Options{})
		ep := srv.Endpoint()
		const total = 300
		r1 := ixStartPeer(t, ep, "DEALER", "reader-1")
		r1.expect(ok, "OPEN", "k")
		r1.reads("k", 100, 100)
		w := ixStartPeer(t, ep, "DEALER", "writer")
		w.expect(ok, "OPEN", "k")
		w.writes("k", total, "F", 0, 4)
		var got []string
		for len(got) < 20 {
			got = append(got, r1.collect(1)...)
		}
		for _, m := range r1.kill() {
			if len(m) != 1 {
				t.Fatalf("reader 1 got %s", describe(m))
			}
			got = append(got, m[0])
		}
		k := len(got)
		checkSeq(t, "reader 1", got, "F", 0)
		w.expectOKs(total)
		ixWaitStats(t, srv, "the killed reader noticed", func(st zpipes.Stats) bool { return st.Clients == 1 })

		r2 := ixStartPeer(t, ep, "DEALER", "reader-2")
		r2.expect(ok, "OPEN", "k")
		r2.send("READ", "k")
		firstOf2 := r2.collect(1)[0]
		j, err := strconv.Atoi(strings.TrimPrefix(firstOf2, "F"))
		if err != nil || !strings.HasPrefix(firstOf2, "F") {
			t.Fatalf("reader 2 got %q", firstOf2)
		}
		if j < k || j > 100 {
			t.Fatalf("reader 1 printed chunks 0..%d, reader 2 starts at %d: chunks were duplicated or lost beyond what was in flight to reader 1 (its 100 READs)", k-1, j)
		}
		r2.reads("k", total-j-1, 100)
		checkSeq(t, "reader 2", r2.collect(total-j-1), "F", j+1)
		t.Logf("reader 1 printed %d chunks, reader 2 read %d..%d; %d were in flight to reader 1 when it died", k, j, total-1, j-k)
		if st := srv.Stats(); st.Chunks != 0 {
			t.Fatalf("chunks left over: %+v", st)
		}
	})
}

package zpipes_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zbroker/zbroker/zmtp"
	"github.com/zbroker/zbroker/zpipes"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// uniqueName returns a broker name no other test (or test binary) uses.
func uniqueName(t testing.TB) string {
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	return fmt.Sprintf("test-%s-%d-%x", name, os.Getpid(), rand.Uint64())
}

func startBroker(t testing.TB, opts zpipes.Options) *zpipes.Server {
	t.Helper()
	if opts.Name == "" {
		opts.Name = uniqueName(t)
	}
	opts.Logger = quiet
	srv, err := zpipes.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func dial(t testing.TB, srv *zpipes.Server) *zpipes.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := zpipes.DialEndpoint(ctx, srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect() })
	return c
}

// testCtx bounds each test so that a hang fails instead of timing out the
// whole binary.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestRoundTrip(t *testing.T) {
	srv := startBroker(t, zpipes.Options{})
	ctx := testCtx(t)
	c, err := zpipes.Dial(ctx, strings.TrimPrefix(srv.Endpoint(), "ipc://@/zpipes/"))
	must(t, err)
	t.Cleanup(func() { c.Disconnect() })
	if c.Endpoint() != srv.Endpoint() {
		t.Errorf("Endpoint() = %q, want %q", c.Endpoint(), srv.Endpoint())
	}
	chunks := [][]byte{[]byte("hello"), {}, []byte("OK"), []byte("ERROR"), {0, 0, 1}, bytes.Repeat([]byte("x"), 5000)}
	must(t, c.Open(ctx, "rt"))
	for _, ch := range chunks {
		must(t, c.Write(ctx, "rt", ch))
	}
	for i, want := range chunks {
		got, err := c.Read(ctx, "rt")
		must(t, err)
		if !bytes.Equal(got, want) {
			t.Errorf("chunk %d = %q, want %q", i, got, want)
		}
	}
	must(t, c.Close(ctx, "rt"))
	if st := srv.Stats(); st.Pipes != 0 || st.Chunks != 0 {
		t.Errorf("after close: %+v, want no pipes", st)
	}
	must(t, c.Err())
}

// A writer may close the pipe and go; a later reader gets everything.
func TestSurvivesWriterExit(t *testing.T) {
	srv := startBroker(t, zpipes.Options{})
	ctx := testCtx(t)
	w := dial(t, srv)
	must(t, w.Open(ctx, "p"))
	must(t, w.Write(ctx, "p", []byte("one")))
	must(t, w.Write(ctx, "p", []byte("two")))
	must(t, w.Close(ctx, "p"))
	must(t, w.Disconnect())
	if err := w.Write(ctx, "p", []byte("x")); !errors.Is(err, zpipes.ErrClosed) {
		t.Errorf("Write after Disconnect: %v, want ErrClosed", err)
	}
	must(t, w.Disconnect()) // idempotent

	r := dial(t, srv)
	must(t, r.Open(ctx, "p"))
	for _, want := range []string{"one", "two"} {
		got, err := r.Read(ctx, "p")
		must(t, err)
		if string(got) != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

func TestPipeline20000Writes(t *testing.T) {
	srv := startBroker(t, zpipes.Options{})
	ctx := testCtx(t)
	w, r := dial(t, srv), dial(t, srv)
	const n = 20000
	must(t, w.Open(ctx, "bulk"))
	must(t, r.Open(ctx, "bulk"))

	// The reader pipelines its READs too: exactly n of them, in a window.
	got := make(chan error, 1)
	go func() {
		var window []*zpipes.Pending
		next := 0
		for i := 0; i < n; i++ {
			window = append(window, r.ReadAsync("bulk"))
			for len(window) > 100 || (i == n-1 && len(window) > 0) {
				chunk, err := window[0].Wait(ctx)
				window = window[1:]
				if err != nil {
					got <- err
					return
				}
				if want := fmt.Sprint(next); string(chunk) != want {
					got <- fmt.Errorf("chunk %d = %q, want %q", next, chunk, want)
					return
				}
				next++
			}
		}
		got <- nil
	}()

	pl := zpipes.NewPipeline(256)
	for i := 0; i < n; i++ {
		must(t, pl.Add(ctx, w.WriteAsync("bulk", []byte(fmt.Sprint(i)))))
		if pl.Len() > 256 {
			t.Fatalf("%d commands in flight, window is 256", pl.Len())
		}
	}
	must(t, pl.Flush(ctx))
	if pl.Len() != 0 {
		t.Fatalf("Len after Flush = %d", pl.Len())
	}
	must(t, <-got)
}

// Many commands sent at once without waiting must not deadlock the
// connection. Here the broker has more than its 64 MiB send queue of READ
// replies for us, so it stops reading our commands until we read; we must
// read even though thousands of our WRITEs are still queued for sending.
func TestManyAsyncWithoutWindow(t *testing.T) {
	srv := startBroker(t, zpipes.Options{PipeLimit: 256 << 20})
	ctx := testCtx(t)
	filler, c := dial(t, srv), dial(t, srv)
	const big, bigSize = 72, 1 << 20
	must(t, filler.Open(ctx, "big"))
	pl := zpipes.NewPipeline(8)
	for i := 0; i < big; i++ {
		must(t, pl.Add(ctx, filler.WriteAsync("big", make([]byte, bigSize))))
	}
	must(t, pl.Flush(ctx))

	must(t, c.Open(ctx, "big"))
	must(t, c.Open(ctx, "small"))
	reads := make([]*zpipes.Pending, big)
	for i := range reads {
		reads[i] = c.ReadAsync("big")
	}
	const n = 50000
	writes := make([]*zpipes.Pending, n)
	chunk := bytes.Repeat([]byte("x"), 100)
	for i := range writes {
		writes[i] = c.WriteAsync("small", chunk)
	}
	for i, p := range reads {
		if got, err := p.Wait(ctx); err != nil || len(got) != bigSize {
			t.Fatalf("READ %d: %d bytes, %v (stats %+v)", i, len(got), err, srv.Stats())
		}
	}
	for i, p := range writes {
		if _, err := p.Wait(ctx); err != nil {
			t.Fatalf("WRITE %d: %v (stats %+v)", i, err, srv.Stats())
		}
	}
	if st := srv.Stats(); st.Chunks != n {
		t.Errorf("broker holds %d chunks, want %d", st.Chunks, n)
	}
}

func TestBrokerErrorsAreTyped(t *testing.T) {
	srv := startBroker(t, zpipes.Options{})
	ctx := testCtx(t)
	c := dial(t, srv)

	check := func(err error, cmd, reason string) {
		t.Helper()
		var be *zpipes.BrokerError
		if !errors.As(err, &be) {
			t.Fatalf("got %v (%T), want *BrokerError", err, err)
		}
		if be.Command != cmd || !strings.Contains(be.Reason, reason) {
			t.Errorf("got %+v, want command %s and reason containing %q", be, cmd, reason)
		}
		if errors.Is(err, zpipes.ErrConnectionLost) || errors.Is(err, zpipes.ErrClosed) || errors.Is(err, zpipes.ErrProtocol) {
			t.Errorf("broker error %v matches a transport error", err)
		}
	}
	check(c.Write(ctx, "never-opened", []byte("x")), "WRITE", "not open")
	_, err := c.Read(ctx, "never-opened")
	check(err, "READ", "not open")
	check(c.Close(ctx, "never-opened"), "CLOSE", "not open")
	check(c.Open(ctx, ""), "OPEN", "missing pipe name")
	check(c.Open(ctx, strings.Repeat("n", 256)), "OPEN", "longer than")
	if msg := c.Open(ctx, "").Error(); !strings.Contains(msg, "OPEN") || !strings.Contains(msg, "missing pipe name") {
		t.Errorf("error message %q lacks command or reason", msg)
	}

	// A second reader is refused.
	must(t, c.Open(ctx, "shared"))
	must(t, c.Write(ctx, "shared", []byte("a")))
	if _, err := c.Read(ctx, "shared"); err != nil {
		t.Fatal(err)
	}
	other := dial(t, srv)
	must(t, other.Open(ctx, "shared"))
	_, err = other.Read(ctx, "shared")
	check(err, "READ", "already has a reader")

	// Errors leave both connections usable, replies still in step.
	must(t, c.Err())
	must(t, other.Write(ctx, "shared", []byte("b")))
	got, err := c.Read(ctx, "shared")
	must(t, err)
	if string(got) != "b" {
		t.Fatalf("got %q, want b", got)
	}
}

func TestWriterReader5MiB(t *testing.T) {
	srv := startBroker(t, zpipes.Options{})
	ctx := testCtx(t)
	wc, rc := dial(t, srv), dial(t, srv)
	data := make([]byte, 5<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}

	done := make(chan error, 1)
	go func() {
		w := zpipes.NewWriter(wc, "stream", zpipes.WithEOS(), zpipes.WithWindow(16), zpipes.WithContext(ctx))
		// Writes of irregular sizes, each one chunk.
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 1+rng.IntN(100_000))
			if k, err := w.Write(rest[:n]); err != nil || k != n {
				done <- fmt.Errorf("Write = %d, %v", k, err)
				return
			}
			rest = rest[n:]
		}
		done <- w.Close()
	}()

	r := zpipes.NewReader(rc, "stream", zpipes.WithEOS(), zpipes.WithContext(ctx))
	got, err := io.ReadAll(r)
	must(t, err)
	must(t, <-done)
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, differing from the %d written", len(got), len(data))
	}
	// The end of stream is sticky.
	if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("Read after EOS = %d, %v, want io.EOF", n, err)
	}
	must(t, r.Close())
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, zpipes.ErrStreamClosed) {
		t.Errorf("Read after Close: %v", err)
	}
}

// io.Copy uses the Writer with 32 KiB writes and the Reader's WriteTo; a
// second stream on the same pipe follows the first EOS.
func TestStreamsWithCopy(t *testing.T) {
	srv := startBroker(t, zpipes.Options{})
	wc, rc := dial(t, srv), dial(t, srv)
	first := bytes.Repeat([]byte("first stream "), 20000)
	second := []byte("second")
	for _, data := range [][]byte{first, second, {}} {
		w := zpipes.NewWriter(wc, "s", zpipes.WithEOS())
		if _, err := io.Copy(w, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		must(t, w.Close())
		must(t, w.Close()) // again: same result
		if _, err := w.Write([]byte("x")); !errors.Is(err, zpipes.ErrStreamClosed) {
			t.Errorf("Write after Close: %v", err)
		}
	}
	for i, want := range [][]byte{first, second, {}} {
		r := zpipes.NewReader(rc, "s", zpipes.WithEOS())
		var buf bytes.Buffer
		n, err := io.Copy(&buf, r)
		must(t, err)
		if n != int64(len(want)) || !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("stream %d: got %d bytes, want %d", i, n, len(want))
		}
		must(t, r.Close())
	}
}

// Without WithEOS the Reader skips empty chunks and the Writer's Close
// sends none.
func TestStreamsWithoutEOS(t *testing.T) {
	srv := startBroker(t, zpipes.Options{})
	ctx := testCtx(t)
	c, rc := dial(t, srv), dial(t, srv)
	must(t, c.Open(ctx, "p"))
	for _, s := range []string{"ab", "", "cd", ""} {
		must(t, c.Write(ctx, "p", []byte(s)))
	}
	w := zpipes.NewWriter(c, "p")
	if n, err := w.Write(nil); n != 0 || err != nil {
		t.Fatalf("empty Write = %d, %v", n, err)
	}
	if _, err := w.Write([]byte("ef")); err != nil {
		t.Fatal(err)
	}
	must(t, w.Flush())
	must(t, w.Close())
	if st := srv.Stats(); st.Chunks != 5 {
		t.Fatalf("pipe holds %d chunks, want 5 (no EOS chunk from Close)", st.Chunks)
	}
	r := zpipes.NewReader(rc, "p")
	buf := make([]byte, 6)
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "abcdef" {
		t.Fatalf("got %q, %v", buf, err)
	}
	must(t, r.Close())
}

func TestWriterReportsFirstError(t *testing.T) {
	srv := startBroker(t, zpipes.Options{})
	c := dial(t, srv)
	w := zpipes.NewWriter(c, strings.Repeat("x", 300)) // name too long
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		_, err = w.Write([]byte("data"))
	}
	if err == nil {
		err = w.Flush()
	}
	var be *zpipes.BrokerError
	if !errors.As(err, &be) || be.Command != "OPEN" {
		t.Fatalf("got %v, want the OPEN's *BrokerError", err)
	}
	if err := w.Close(); !errors.As(err, &be) || be.Command != "OPEN" {
		t.Fatalf("Close = %v, want the first error", err)
	}
	must(t, c.Err())
}

func TestChunk16MiB(t *testing.T) {
	srv := startBroker(t, zpipes.Options{})
	ctx := testCtx(t)
	w, r := dial(t, srv), dial(t, srv)
	big := make([]byte, 16<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	must(t, w.Open(ctx, "big"))
	must(t, r.Open(ctx, "big"))
	must(t, w.Write(ctx, "big", big))
	got, err := r.Read(ctx, "big")
	must(t, err)
	if !bytes.Equal(got, big) {
		t.Fatalf("16 MiB chunk differs (got %d bytes)", len(got))
	}
}

// A cancelled Read stays outstanding; its chunk goes to the next Read of
// the pipe and later replies still match their commands.
func TestCancelledReadDoesNotDesync(t *testing.T) {
	srv := startBroker(t, zpipes.Options{})
	ctx := testCtx(t)
	r, w := dial(t, srv), dial(t, srv)
	must(t, r.Open(ctx, "p"))
	must(t, w.Open(ctx, "p"))

	for i := 0; i < 3; i++ { // repeated timeouts reuse one READ
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		_, err := r.Read(short, "p")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Read on empty pipe: %v, want deadline exceeded", err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.Read(cancelled, "p"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read with cancelled ctx: %v", err)
	}

	must(t, w.Write(ctx, "p", []byte("a")))
	must(t, w.Write(ctx, "p", []byte("b")))
	// The OPEN's OK comes after the abandoned READ's chunk: it must not be
	// taken for a chunk, nor the chunk for an OK.
	must(t, r.Open(ctx, "other"))
	for _, want := range []string{"a", "b"} {
		got, err := r.Read(ctx, "p")
		must(t, err)
		if string(got) != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if st := srv.Stats(); st.Chunks != 0 {
		t.Fatalf("pipe still holds %d chunks", st.Chunks)
	}

	// Close ends an abandoned READ: the broker answers it with an error
	// and the pipe gets no new reader's READ until one is sent.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	_, err := r.Read(short, "p")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	must(t, r.Close(ctx, "p"))
	must(t, w.Write(ctx, "p", []byte("c")))
	if st := srv.Stats(); st.Chunks != 1 {
		t.Fatalf("pipe holds %d chunks, want 1 (the closed READ took none)", st.Chunks)
	}
	must(t, r.Open(ctx, "p"))
	got, err := r.Read(ctx, "p")
	must(t, err)
	if string(got) != "c" {
		t.Fatalf("got %q, want c", got)
	}
}

// A Write cancelled while the broker withholds its OK (backpressure) does
// not desync the replies that follow.
func TestCancelledWriteDoesNotDesync(t *testing.T) {
	srv := startBroker(t, zpipes.Options{PipeLimit: 1000})
	ctx := testCtx(t)
	w, r := dial(t, srv), dial(t, srv)
	must(t, w.Open(ctx, "p"))
	must(t, r.Open(ctx, "p"))
	chunk := make([]byte, 1000)
	must(t, w.Write(ctx, "p", chunk)) // fills the pipe past its limit
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err := w.Write(short, "p", []byte("held"))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write over the limit: %v, want deadline exceeded", err)
	}
	for st := srv.Stats(); st.Stalled != 1; st = srv.Stats() {
		if ctx.Err() != nil {
			t.Fatalf("stats %+v, want one held WRITE", st)
		}
		time.Sleep(time.Millisecond)
	}
	// Queue more behind the held one, then drain.
	open := w.OpenAsync("q")
	for _, want := range [][]byte{chunk, []byte("held")} {
		got, err := r.Read(ctx, "p")
		must(t, err)
		if !bytes.Equal(got, want) {
			t.Fatalf("got %d bytes, want %d", len(got), len(want))
		}
	}
	if _, err := open.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	must(t, w.Write(ctx, "q", []byte("z")))
	must(t, w.Err())
}

func TestConnectionLossFailsPending(t *testing.T) {
	srv := startBroker(t, zpipes.Options{})
	ctx := testCtx(t)
	c := dial(t, srv)
	must(t, c.Open(ctx, "p"))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(ctx, "p") // waits: the pipe is empty
		errc <- err
	}()
	pending := c.ReadAsync("p")
	time.Sleep(50 * time.Millisecond)
	srv.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, zpipes.ErrConnectionLost) {
			t.Fatalf("Read: %v, want ErrConnectionLost", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still waiting 5s after the broker stopped")
	}
	if _, err := pending.Wait(ctx); !errors.Is(err, zpipes.ErrConnectionLost) {
		t.Fatalf("pending READ: %v", err)
	}
	if err := c.Write(ctx, "p", []byte("x")); !errors.Is(err, zpipes.ErrConnectionLost) {
		t.Fatalf("Write after loss: %v", err)
	}
	if !errors.Is(c.Err(), zpipes.ErrConnectionLost) {
		t.Fatalf("Err() = %v", c.Err())
	}
	w := zpipes.NewWriter(c, "p")
	w.Write([]byte("x"))
	if err := w.Close(); !errors.Is(err, zpipes.ErrConnectionLost) {
		t.Fatalf("Writer.Close after loss: %v", err)
	}
}

func TestDisconnectFailsPending(t *testing.T) {
	srv := startBroker(t, zpipes.Options{})
	ctx := testCtx(t)
	c := dial(t, srv)
	must(t, c.Open(ctx, "p"))
	p := c.ReadAsync("p")
	must(t, c.Disconnect())
	if _, err := p.Wait(ctx); !errors.Is(err, zpipes.ErrClosed) {
		t.Fatalf("READ in flight at Disconnect: %v, want ErrClosed", err)
	}
	if _, err := c.Read(ctx, "p"); !errors.Is(err, zpipes.ErrClosed) {
		t.Fatalf("Read after Disconnect: %v", err)
	}
}

func TestDialNoBroker(t *testing.T) {
	ctx := testCtx(t)
	name := uniqueName(t)
	_, err := zpipes.Dial(ctx, name)
	if !errors.Is(err, zpipes.ErrNoBroker) {
		t.Fatalf("Dial to a missing broker: %v, want ErrNoBroker", err)
	}
	if !strings.Contains(err.Error(), zpipes.Endpoint(name)) {
		t.Errorf("error %q does not name the endpoint", err)
	}
	_, err = zpipes.DialEndpoint(ctx, "ipc://"+t.TempDir()+"/nothing")
	if !errors.Is(err, zpipes.ErrNoBroker) {
		t.Fatalf("Dial to a missing socket file: %v, want ErrNoBroker", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	srv := startBroker(t, zpipes.Options{})
	ctx := testCtx(t)
	c, r := dial(t, srv), dial(t, srv)
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pipe := fmt.Sprint("p", g)
			if err := c.Open(ctx, pipe); err != nil {
				t.Error(err)
				return
			}
			for i := 0; i < each; i++ {
				if err := c.Write(ctx, pipe, []byte(fmt.Sprint(i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for g := 0; g < writers; g++ {
		pipe := fmt.Sprint("p", g)
		must(t, r.Open(ctx, pipe))
		for i := 0; i < each; i++ {
			got, err := r.Read(ctx, pipe)
			must(t, err)
			if string(got) != fmt.Sprint(i) {
				t.Fatalf("%s: got %q, want %d", pipe, got, i)
			}
		}
	}
}

// A fake broker that answers a WRITE with a chunk: the client must notice
// that replies no longer fit and fail instead of going on out of step.
func TestProtocolErrorDisconnects(t *testing.T) {
	ep := zpipes.Endpoint(uniqueName(t))
	sock, err := zmtp.Listen(ep, zmtp.Options{SocketType: "ROUTER", Logger: quiet})
	must(t, err)
	t.Cleanup(func() { sock.Close() })
	go func() {
		for batch := range sock.Events() {
			for _, ev := range batch.Events {
				if ev.Type == zmtp.Message {
					ev.Conn.Send([][]byte{[]byte("not OK")})
				}
			}
			batch.Release()
		}
	}()
	ctx := testCtx(t)
	c, err := zpipes.DialEndpoint(ctx, ep)
	must(t, err)
	t.Cleanup(func() { c.Disconnect() })
	if err := c.Write(ctx, "p", []byte("x")); !errors.Is(err, zpipes.ErrProtocol) {
		t.Fatalf("Write answered by a chunk: %v, want ErrProtocol", err)
	}
	if err := c.Open(ctx, "p"); !errors.Is(err, zpipes.ErrProtocol) {
		t.Fatalf("later call: %v, want ErrProtocol", err)
	}
}

func TestDialOptions(t *testing.T) {
	srv := startBroker(t, zpipes.Options{})
	ctx := testCtx(t)
	c, err := zpipes.DialEndpoint(ctx, srv.Endpoint(), zpipes.WithHeartbeat(50*time.Millisecond), zpipes.WithMaxChunkSize(1000))
	must(t, err)
	t.Cleanup(func() { c.Disconnect() })
	must(t, c.Open(ctx, "p"))
	// A few heartbeats while idle. The interval leaves the broker 150 ms
	// to answer each PING: 30 ms was missed on a loaded 2-core machine.
	time.Sleep(200 * time.Millisecond)
	must(t, c.Write(ctx, "p", make([]byte, 1000)))
	if _, err := c.Read(ctx, "p"); err != nil {
		t.Fatalf("chunk at the limit: %v", err)
	}
	must(t, c.Write(ctx, "p", make([]byte, 2100)))
	if _, err := c.Read(ctx, "p"); !errors.Is(err, zpipes.ErrConnectionLost) {
		t.Fatalf("chunk over the limit: %v, want ErrConnectionLost", err)
	}
}

// Command zpipe uses the named pipes of a zpipes broker (zbroker) from the
// shell, like files: "zpipe write PIPE" copies standard input into a pipe
// and "zpipe read PIPE" copies a pipe to standard output. Run
// "zpipe --help" for the usage.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/zbroker/zbroker/internal/cli"
	"github.com/zbroker/zbroker/internal/units"
	"github.com/zbroker/zbroker/zmtp"
	"github.com/zbroker/zbroker/zpipes"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `usage: zpipe [-b NAME] write [--lines | --size N] [--no-eos] [--window N] PIPE
       zpipe [-b NAME] read [--lines] [--count N] [--follow] PIPE
       zpipe [-b NAME] ping [--wait DURATION]
       zpipe help | --help | --version

zpipe uses the named pipes of a zpipes broker (zbroker) like files. A pipe
carries chunks of bytes from its writers to its one reader, and keeps them
after the writer exits until a reader takes them.

Commands:
  write PIPE   read standard input to its end and write it to PIPE
  read PIPE    read chunks from PIPE and write them to standard output
  ping         check that the broker is running

Flags (before or after the command):
  -b, --broker NAME   the broker's name (default "default"); zbroker NAME
                      serves ipc://@/zpipes/NAME
  --endpoint EP       connect to EP instead, e.g. tcp://127.0.0.1:5555
  --timeout D         give up after D (e.g. 10s, 2m), connecting included;
                      default 0: no limit
` + cli.BrokerUIDHelp + cli.CurveHelp + `  --lines             write: one chunk per line, newline included, so an
                      empty line is the chunk "\n"; read: end each chunk with
                      a newline if it has none
  --size N            write: chunk size, e.g. 4096, 64KiB, 1MiB (default
                      64KiB); every chunk is full except the last
  --window N          write: chunks sent ahead of the broker's OKs (default 64)
  --no-eos            write: do not send the end-of-stream chunk
  --count N           read: stop after N chunks (default 0: no limit)
  --follow            read: do not stop at end-of-stream chunks, skip them
  --wait D            ping: wait up to D for the broker to start (for scripts)

End of stream:
  Pipes are endless, so zpipe marks the end of a stream with an empty chunk.
  write sends one when its input ends, unless --no-eos; read exits 0 when it
  reads one, unless --follow. Data chunks are never empty, so the mark cannot
  be mistaken for data. The mark works for one stream in a pipe at a time:
  the broker serves a pipe's writers round robin, so the chunks of two
  writers that are in the pipe together interleave, even if the writers ran
  one after the other. Read a stream before writing the next to the same
  pipe, or give each stream its own pipe.

  read sends one READ at a time and takes no chunk it does not print: after
  --count N or the end-of-stream chunk, the rest stays in the pipe.

Full pipes:
  The broker holds back a writer while its pipe (or all pipes) is over the
  broker's memory limits, until a reader takes chunks. write then waits,
  and says so on standard error after a few seconds.

Nothing lost when read dies:
  read acknowledges each chunk to the broker only once it has written it
  to standard output, so if zpipe is killed, or its output closes (as in
  "zpipe read PIPE | head -3"), the chunk it was on goes back to the head
  of the pipe for the next reader. (With a broker that lacks acknowledging
  readers, that chunk is lost; "--count N" still takes exactly N.)

Examples:
  seq 1000 | zpipe write --lines numbers
  zpipe read --lines numbers | wc -l          # 1000
  tar c dir | zpipe write backup   # and elsewhere: zpipe read backup | tar x
  zpipe read --lines --follow log             # like tail -f
  zpipe ping --wait 10s && seq 3 | zpipe write --lines p   # after starting zbroker

Exit status: 0 success; 1 error (no broker, command refused by the broker,
connection lost, --timeout passed, input or output error); 2 usage error.
`

// dialTimeout bounds connecting to the broker. An abstract IPC endpoint
// with no broker refuses at once; a timeout means a process holds the
// endpoint but does not answer.
const dialTimeout = 5 * time.Second

// holdNotice is how long write waits on a full pipe before saying so.
var holdNotice = 3 * time.Second

type config struct {
	broker   string
	endpoint string
	timeout  time.Duration
	lines    bool
	size     int64
	window   int
	noEOS    bool
	count    int
	follow   bool
	wait     time.Duration
	uid      int
	curve    cli.Curve
	// curveOpts are the CURVE options curve asks for, once parsed.
	curveOpts *zmtp.CurveOptions
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := &cli.Command{Name: "zpipe", Usage: usage, Stdout: stdout, Stderr: stderr}
	cfg, verb, pipe, err := parseArgs(cmd, args)
	if err != nil {
		return cmd.Exit(err)
	}
	ctx := context.Background()
	if cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.timeout)
		defer cancel()
	}
	c, err := connect(ctx, cfg)
	if err != nil {
		return cmd.Exit(timedOut(err, cfg))
	}
	defer c.Disconnect()

	switch verb {
	case "write":
		err = write(ctx, c, pipe, cfg, stdin, stderr)
	case "read":
		err = read(ctx, c, pipe, cfg, stdout)
	case "ping":
		err = ping(ctx, c, cfg, stdout)
	}
	if err != nil {
		return cmd.Exit(errors.New(message(timedOut(err, cfg))))
	}
	return cli.ExitOK
}

// timedOut names --timeout as the cause when it expired.
func timedOut(err error, cfg config) error {
	if cfg.timeout > 0 && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("gave up after --timeout %v", cfg.timeout)
	}
	return err
}

// connect dials the broker; with ping --wait it retries while no broker
// listens, until the broker starts or the wait is over.
func connect(ctx context.Context, cfg config) (*zpipes.Client, error) {
	endpoint := cfg.endpoint
	who := "broker at " + endpoint
	if endpoint == "" {
		endpoint = zpipes.Endpoint(cfg.broker)
		who = fmt.Sprintf("broker %q at %s", cfg.broker, endpoint)
	}
	waitUntil := time.Now().Add(cfg.wait)
	for {
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		c, err := zpipes.DialEndpoint(dctx, endpoint, zpipes.WithBrokerUID(cfg.uid), zpipes.WithCurve(cfg.curveOpts))
		cancel()
		switch {
		case err == nil:
			return c, nil
		case errors.Is(err, zpipes.ErrNoBroker) && time.Now().Before(waitUntil):
			select {
			case <-time.After(50 * time.Millisecond):
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		case errors.Is(err, zpipes.ErrNoBroker) && cfg.wait > 0:
			return nil, fmt.Errorf("no %s after waiting %v (is zbroker running?)", who, cfg.wait)
		case errors.Is(err, zpipes.ErrNoBroker):
			return nil, fmt.Errorf("no %s (is zbroker running?)", who)
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			return nil, fmt.Errorf("%s did not answer within %v", who, dialTimeout)
		default:
			return nil, errors.New(message(err))
		}
	}
}

// message drops the client package's prefix: we print our own.
func message(err error) string {
	return strings.TrimPrefix(err.Error(), "zpipes: ")
}

// parseArgs reads the command line. Flags may come before or after the
// command and the pipe name; "--" ends the flags.
func parseArgs(cmd *cli.Command, args []string) (cfg config, verb, pipe string, err error) {
	cfg = config{size: 64 << 10, window: zpipes.DefaultWindow}
	fs := cmd.FlagSet()
	cli.BrokerFlag(fs, &cfg.broker)
	fs.StringVar(&cfg.endpoint, "endpoint", "", "")
	fs.DurationVar(&cfg.timeout, "timeout", 0, "")
	fs.BoolVar(&cfg.lines, "lines", false, "")
	fs.Var(units.Size{P: &cfg.size}, "size", "")
	fs.IntVar(&cfg.window, "window", cfg.window, "")
	fs.BoolVar(&cfg.noEOS, "no-eos", false, "")
	fs.IntVar(&cfg.count, "count", 0, "")
	fs.BoolVar(&cfg.follow, "follow", false, "")
	fs.DurationVar(&cfg.wait, "wait", 0, "")
	cli.BrokerUIDFlag(fs, &cfg.uid)
	cli.CurveFlags(fs, &cfg.curve)
	words, err := cli.Parse(fs, args)
	if err != nil {
		return cfg, "", "", err
	}
	if cfg.curveOpts, err = cfg.curve.Options(); err != nil {
		return cfg, "", "", err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	if len(words) == 0 {
		return cfg, "", "", cli.Usagef("missing command (write, read or ping)")
	}
	verb, words = words[0], words[1:]
	allowed := map[string][]string{
		"write": {"lines", "size", "window", "no-eos"},
		"read":  {"lines", "count", "follow"},
		"ping":  {"wait"},
	}
	if verb == "help" {
		return cfg, "", "", flag.ErrHelp
	}
	ok, known := allowed[verb]
	if !known {
		return cfg, "", "", cli.Usagef("unknown command %q (want write, read or ping)", verb)
	}
	for _, name := range []string{"lines", "size", "window", "no-eos", "count", "follow", "wait"} {
		if set[name] && !contains(ok, name) {
			return cfg, "", "", cli.Usagef("%s does not take --%s", verb, name)
		}
	}
	switch {
	case verb == "ping" && len(words) > 0:
		return cfg, "", "", cli.Usagef("ping takes no arguments")
	case verb != "ping" && len(words) == 0:
		return cfg, "", "", cli.Usagef("%s: missing pipe name", verb)
	case verb != "ping" && len(words) > 1:
		return cfg, "", "", cli.Usagef("%s takes one pipe name, got %q", verb, words)
	case verb != "ping" && (words[0] == "" || len(words[0]) > zpipes.MaxPipeName):
		return cfg, "", "", cli.Usagef("pipe names are 1 to %d bytes", zpipes.MaxPipeName)
	case cfg.broker == "":
		return cfg, "", "", cli.Usagef("empty broker name")
	case set["lines"] && set["size"]:
		return cfg, "", "", cli.Usagef("--lines and --size exclude each other")
	case cfg.size <= 0 || cfg.size > 1<<30:
		return cfg, "", "", cli.Usagef("--size must be between 1 byte and 1GiB")
	case cfg.window < 1:
		return cfg, "", "", cli.Usagef("--window must be at least 1")
	case cfg.count < 0:
		return cfg, "", "", cli.Usagef("--count must not be negative")
	case cfg.timeout < 0 || cfg.wait < 0:
		return cfg, "", "", cli.Usagef("durations must not be negative")
	}
	if verb != "ping" {
		pipe = words[0]
	}
	return cfg, verb, pipe, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// write copies stdin into the pipe, one chunk per line or per --size
// bytes, then sends the end-of-stream chunk unless --no-eos. If stdin
// fails, the end-of-stream chunk is not sent: the stream is incomplete.
func write(ctx context.Context, c *zpipes.Client, pipe string, cfg config, stdin io.Reader, stderr io.Writer) error {
	// Open first so that a refusal is reported before reading any input.
	if err := c.Open(ctx, pipe); err != nil {
		return err
	}
	opts := []zpipes.StreamOption{zpipes.WithContext(ctx), zpipes.WithWindow(cfg.window)}
	if !cfg.noEOS {
		opts = append(opts, zpipes.WithEOS())
	}
	w := &heldWriter{w: zpipes.NewWriter(c, pipe, opts...)}
	stop := w.notice(stderr, pipe)
	defer stop()
	var err error
	if cfg.lines {
		err = writeLines(w, stdin)
	} else {
		err = writeBlocks(w, stdin, int(cfg.size))
	}
	if err != nil {
		w.w.Abort()
		return err
	}
	return w.Close()
}

// heldWriter notes when a Write or Close of the stream started waiting,
// so that a full pipe can be reported while the broker holds it back.
type heldWriter struct {
	w     *zpipes.Writer
	since atomic.Int64 // UnixNano of the call in progress, 0 if none
}

func (h *heldWriter) Write(p []byte) (int, error) {
	h.since.Store(time.Now().UnixNano())
	defer h.since.Store(0)
	return h.w.Write(p)
}

func (h *heldWriter) Close() error {
	h.since.Store(time.Now().UnixNano())
	defer h.since.Store(0)
	return h.w.Close()
}

// notice prints one line on stderr the first time a call waits longer
// than holdNotice, until the returned stop is called (which waits for the
// watcher to end, so nothing is printed after it).
func (h *heldWriter) notice(stderr io.Writer, pipe string) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(holdNotice / 4)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			since := h.since.Load()
			if since != 0 && time.Since(time.Unix(0, since)) >= holdNotice {
				fmt.Fprintf(stderr, "zpipe: pipe %q is full: the broker holds this writer back until a reader takes chunks (still waiting)\n", pipe)
				return
			}
		}
	}()
	return func() { close(quit); <-done }
}

// inputError marks a failure to read stdin, as opposed to the Writer's.
type inputError struct{ err error }

func (e inputError) Error() string { return "reading input: " + e.err.Error() }
func (e inputError) Unwrap() error { return e.err }

func writeLines(w io.Writer, stdin io.Reader) error {
	br := bufio.NewReaderSize(stdin, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long line: gather it whole, it is one chunk.
			var rest []byte
			rest, err = br.ReadBytes('\n')
			line = append(append([]byte(nil), line...), rest...)
		}
		if len(line) > 0 {
			if _, werr := w.Write(line); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return inputError{err}
		}
	}
}

func writeBlocks(w io.Writer, stdin io.Reader, size int) error {
	buf := make([]byte, size)
	for {
		n, err := io.ReadFull(stdin, buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return inputError{err}
		}
	}
}

// read copies chunks of the pipe to stdout until the end-of-stream chunk
// (unless --follow) or --count chunks. It sends one READ at a time, so it
// takes no chunk out of the pipe that it does not print. It reads as an
// acknowledging reader if the broker can, and acknowledges a chunk once
// written to stdout (unbuffered: in the kernel's hands), together with
// the next READ; a chunk not written goes back to the pipe when zpipe
// exits or dies.
func read(ctx context.Context, c *zpipes.Client, pipe string, cfg config, stdout io.Writer) error {
	acking := true
	if err := c.OpenAck(ctx, pipe); err != nil {
		var refused *zpipes.BrokerError
		if !errors.As(err, &refused) {
			return err
		}
		// A broker without the extension; our connection had no pipe
		// open, so nothing else can be refused.
		acking = false
		if err := c.Open(ctx, pipe); err != nil {
			return err
		}
	}
	done := 0 // chunks finished with and not yet acknowledged
	ack := func() *zpipes.Pending {
		if !acking || done == 0 {
			return nil
		}
		p := c.AckAsync(pipe, done)
		done = 0
		return p
	}
	for n := 0; cfg.count == 0 || n < cfg.count; {
		acked := ack()
		chunk, err := c.Read(ctx, pipe)
		if err != nil {
			return err
		}
		if acked != nil {
			if _, err := acked.Wait(ctx); err != nil { // in before the chunk
				return err
			}
		}
		done++
		if len(chunk) == 0 {
			if cfg.follow {
				continue
			}
			break
		}
		if cfg.lines && chunk[len(chunk)-1] != '\n' {
			chunk = append(chunk, '\n')
		}
		if _, err := stdout.Write(chunk); err != nil {
			return fmt.Errorf("writing output: %w", err)
		}
		n++
	}
	if p := ack(); p != nil {
		if _, err := p.Wait(ctx); err != nil {
			return err
		}
	}
	return c.Close(ctx, pipe)
}

// ping opens and closes a pipe of its own, which checks that the broker
// answers commands, and reports the round trip.
func ping(ctx context.Context, c *zpipes.Client, cfg config, stdout io.Writer) error {
	pipe := fmt.Sprintf("zpipe-ping-%d-%x", os.Getpid(), rand.Uint64())
	start := time.Now()
	if err := c.Open(ctx, pipe); err != nil {
		return err
	}
	if err := c.Close(ctx, pipe); err != nil {
		return err
	}
	rtt := time.Since(start) / 2
	who := fmt.Sprintf("broker %q at %s", cfg.broker, c.Endpoint())
	if cfg.endpoint != "" {
		who = "broker at " + c.Endpoint()
	}
	fmt.Fprintf(stdout, "%s is up (round trip %v)\n", who, rtt.Round(time.Microsecond))
	return nil
}

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
	"time"

	"github.com/zbroker/zbroker/internal/units"
	"github.com/zbroker/zbroker/zpipes"
	"github.com/zbroker/zbroker/zpipes/client"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `usage: zpipe [-b NAME] write [--lines | --size N] [--no-eos] [--window N] PIPE
       zpipe [-b NAME] read [--lines] [--count N] [--follow] PIPE
       zpipe [-b NAME] ping

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
  --lines             write: one chunk per line, newline included, so an
                      empty line is the chunk "\n"; read: end each chunk with
                      a newline if it has none
  --size N            write: chunk size, e.g. 4096, 64KiB, 1MiB (default
                      64KiB); every chunk is full except the last
  --window N          write: chunks sent ahead of the broker's OKs (default 64)
  --no-eos            write: do not send the end-of-stream chunk
  --count N           read: stop after N chunks (default 0: no limit)
  --follow            read: do not stop at end-of-stream chunks, skip them

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

Examples:
  seq 1000 | zpipe write --lines numbers
  zpipe read --lines numbers | wc -l          # 1000
  tar c dir | zpipe write backup   # and elsewhere: zpipe read backup | tar x
  zpipe read --lines --follow log             # like tail -f

Exit status: 0 success; 1 error (no broker, command refused by the broker,
connection lost, input or output error); 2 usage error.
`

// dialTimeout bounds connecting to the broker. An abstract IPC endpoint
// with no broker refuses at once; a timeout means a process holds the
// endpoint but does not answer.
const dialTimeout = 5 * time.Second

type config struct {
	broker   string
	endpoint string
	lines    bool
	size     int64
	window   int
	noEOS    bool
	count    int
	follow   bool
}

// usageError is a bad command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, cmd, pipe, err := parseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "zpipe: %v\nRun 'zpipe --help' for usage.\n", err)
		return 2
	}

	endpoint := cfg.endpoint
	if endpoint == "" {
		endpoint = zpipes.Endpoint(cfg.broker)
	}
	dctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	c, err := client.DialEndpoint(dctx, endpoint)
	cancel()
	if err != nil {
		who := fmt.Sprintf("broker %q at %s", cfg.broker, endpoint)
		if cfg.endpoint != "" {
			who = "broker at " + endpoint
		}
		switch {
		case errors.Is(err, client.ErrNoBroker):
			fmt.Fprintf(stderr, "zpipe: no %s (is zbroker running?)\n", who)
		case errors.Is(err, context.DeadlineExceeded):
			fmt.Fprintf(stderr, "zpipe: %s did not answer within %v\n", who, dialTimeout)
		default:
			fmt.Fprintf(stderr, "zpipe: %s\n", message(err))
		}
		return 1
	}
	defer c.Disconnect()

	ctx := context.Background()
	switch cmd {
	case "write":
		err = write(ctx, c, pipe, cfg, stdin)
	case "read":
		err = read(ctx, c, pipe, cfg, stdout)
	case "ping":
		err = ping(ctx, c, cfg, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "zpipe: %s\n", message(err))
		return 1
	}
	return 0
}

// message drops the client package's prefix: we print our own.
func message(err error) string {
	return strings.TrimPrefix(err.Error(), "zpipes: ")
}

// parseArgs reads the command line. Flags may come before or after the
// command and the pipe name; "--" ends the flags.
func parseArgs(args []string) (cfg config, cmd, pipe string, err error) {
	cfg = config{broker: "default", size: 64 << 10, window: client.DefaultWindow}
	fs := flag.NewFlagSet("zpipe", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by run, usage by --help
	fs.StringVar(&cfg.broker, "b", cfg.broker, "")
	fs.StringVar(&cfg.broker, "broker", cfg.broker, "")
	fs.StringVar(&cfg.endpoint, "endpoint", "", "")
	fs.BoolVar(&cfg.lines, "lines", false, "")
	fs.Var(units.Size{P: &cfg.size}, "size", "")
	fs.IntVar(&cfg.window, "window", cfg.window, "")
	fs.BoolVar(&cfg.noEOS, "no-eos", false, "")
	fs.IntVar(&cfg.count, "count", 0, "")
	fs.BoolVar(&cfg.follow, "follow", false, "")

	var words []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return cfg, "", "", err
			}
			return cfg, "", "", usageError{err.Error()}
		}
		consumed := args[:len(args)-fs.NArg()]
		args = fs.Args()
		if len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			words = append(words, args...)
			break
		}
		if len(args) == 0 {
			break
		}
		words, args = append(words, args[0]), args[1:]
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	if len(words) == 0 {
		return cfg, "", "", usageError{"missing command (write, read or ping)"}
	}
	cmd, words = words[0], words[1:]
	allowed := map[string][]string{
		"write": {"lines", "size", "window", "no-eos"},
		"read":  {"lines", "count", "follow"},
		"ping":  {},
	}
	if cmd == "help" {
		return cfg, "", "", flag.ErrHelp
	}
	ok, known := allowed[cmd]
	if !known {
		return cfg, "", "", usageError{fmt.Sprintf("unknown command %q (want write, read or ping)", cmd)}
	}
	for _, name := range []string{"lines", "size", "window", "no-eos", "count", "follow"} {
		if set[name] && !contains(ok, name) {
			return cfg, "", "", usageError{fmt.Sprintf("%s does not take --%s", cmd, name)}
		}
	}
	switch {
	case cmd == "ping" && len(words) > 0:
		return cfg, "", "", usageError{"ping takes no arguments"}
	case cmd != "ping" && len(words) == 0:
		return cfg, "", "", usageError{cmd + ": missing pipe name"}
	case cmd != "ping" && len(words) > 1:
		return cfg, "", "", usageError{fmt.Sprintf("%s takes one pipe name, got %q", cmd, words)}
	case cmd != "ping" && (words[0] == "" || len(words[0]) > zpipes.MaxPipeName):
		return cfg, "", "", usageError{fmt.Sprintf("pipe names are 1 to %d bytes", zpipes.MaxPipeName)}
	case cfg.broker == "":
		return cfg, "", "", usageError{"empty broker name"}
	case set["lines"] && set["size"]:
		return cfg, "", "", usageError{"--lines and --size exclude each other"}
	case cfg.size <= 0 || cfg.size > 1<<30:
		return cfg, "", "", usageError{"--size must be between 1 byte and 1GiB"}
	case cfg.window < 1:
		return cfg, "", "", usageError{"--window must be at least 1"}
	case cfg.count < 0:
		return cfg, "", "", usageError{"--count must not be negative"}
	}
	if cmd != "ping" {
		pipe = words[0]
	}
	return cfg, cmd, pipe, nil
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
func write(ctx context.Context, c *client.Client, pipe string, cfg config, stdin io.Reader) error {
	// Open first so that a refusal is reported before reading any input.
	if err := c.Open(ctx, pipe); err != nil {
		return err
	}
	opts := []client.StreamOption{client.WithContext(ctx), client.WithWindow(cfg.window)}
	if !cfg.noEOS {
		opts = append(opts, client.WithEOS())
	}
	w := client.NewWriter(c, pipe, opts...)
	var err error
	if cfg.lines {
		err = writeLines(w, stdin)
	} else {
		err = writeBlocks(w, stdin, int(cfg.size))
	}
	if err != nil {
		w.Abort()
		return err
	}
	return w.Close()
}

// inputError marks a failure to read stdin, as opposed to the Writer's.
type inputError struct{ err error }

func (e inputError) Error() string { return "reading input: " + e.err.Error() }
func (e inputError) Unwrap() error { return e.err }

func writeLines(w *client.Writer, stdin io.Reader) error {
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

func writeBlocks(w *client.Writer, stdin io.Reader, size int) error {
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
// takes no chunk out of the pipe that it does not print.
func read(ctx context.Context, c *client.Client, pipe string, cfg config, stdout io.Writer) error {
	if err := c.Open(ctx, pipe); err != nil {
		return err
	}
	for n := 0; cfg.count == 0 || n < cfg.count; {
		chunk, err := c.Read(ctx, pipe)
		if err != nil {
			return err
		}
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
	return c.Close(ctx, pipe)
}

// ping opens and closes a pipe of its own, which checks that the broker
// answers commands, and reports the round trip.
func ping(ctx context.Context, c *client.Client, cfg config, stdout io.Writer) error {
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

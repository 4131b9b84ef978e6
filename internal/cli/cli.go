// Package cli is the command-line convention of zbroker, zpipe, mdp and
// zclone: --help prints the usage on standard output and exits 0;
// --version prints the build's version and exits 0; a usage error is one
// line on standard error, with the reason and a hint, and exits 2; any
// other failure exits 1; -b/--broker names the broker everywhere.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/zbroker/zbroker/zmtp"
)

// Exit statuses shared by the commands.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// DefaultBroker is the broker name used when -b is not given.
const DefaultBroker = "default"

// UsageError is a bad command line; Command.Exit reports it with exit 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef makes a UsageError.
func Usagef(format string, a ...any) error { return &UsageError{fmt.Sprintf(format, a...)} }

// ErrVersion is returned by Parse when --version was given.
var ErrVersion = errors.New("version requested")

// Command is one program's identity and output streams.
type Command struct {
	Name   string    // e.g. "zpipe"
	Usage  string    // the complete --help text
	Stdout io.Writer // --help and --version go here
	Stderr io.Writer // errors go here
}

// FlagSet returns a flag set that prints nothing itself (Exit reports its
// errors in the convention's one line) and has --version.
func (c *Command) FlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Bool("version", false, "print the version and exit")
	return fs
}

// BrokerFlag registers -b and --broker on fs.
func BrokerFlag(fs *flag.FlagSet, p *string) {
	*p = DefaultBroker
	fs.StringVar(p, "b", DefaultBroker, "the broker's `name`")
	fs.StringVar(p, "broker", DefaultBroker, "the broker's `name`")
}

// BrokerUIDFlag registers --broker-uid: a broker on ipc must run as our
// own uid or root unless this names another (docs/security.md).
func BrokerUIDFlag(fs *flag.FlagSet, p *int) {
	fs.IntVar(p, "broker-uid", 0, "trust a broker running as `uid`")
}

// BrokerUIDHelp is the --help line of BrokerUIDFlag, for the programs'
// usage texts.
const BrokerUIDHelp = `  --broker-uid UID    trust a broker running as UID (default: only one
                      running as yourself or root, see docs/security.md)
`

// Parse parses args with fs, letting flags come before, between and after
// the positional arguments ("--" ends the flags), and returns the
// positional arguments. It returns flag.ErrHelp for -h/--help, ErrVersion
// for --version and a *UsageError for a bad flag.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var words []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &UsageError{err.Error()}
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
	if Requested(fs, "version") {
		return nil, ErrVersion
	}
	return words, nil
}

// Requested says whether the boolean flag name is set to true.
func Requested(fs *flag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	return f != nil && f.Value.String() == "true"
}

// Exit reports err the convention's way and returns the exit status:
// nil 0; flag.ErrHelp the usage on stdout, 0; ErrVersion the version on
// stdout, 0; a *UsageError one line on stderr, 2; anything else one line
// on stderr, 1.
func (c *Command) Exit(err error) int {
	var ue *UsageError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(c.Stdout, c.Usage)
		return ExitOK
	case errors.Is(err, ErrVersion):
		fmt.Fprintln(c.Stdout, Version(c.Name))
		return ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(c.Stderr, "%s: %s (run '%s --help' for usage)\n", c.Name, oneLine(ue.Msg), c.Name)
		return ExitUsage
	default:
		fmt.Fprintf(c.Stderr, "%s: %s\n", c.Name, oneLine(err.Error()))
		return ExitFailure
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Version describes the running binary from its build information: the
// module version ("(devel)" when built inside the repository) and the VCS
// revision, time and dirty flag when the build recorded them.
func Version(name string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return name + " (no build information)"
	}
	s := name + " " + bi.Main.Version
	var rev, when, dirty string
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.time":
			when = kv.Value
		case "vcs.modified":
			if kv.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev != "" {
		s += fmt.Sprintf(" (revision %s%s %s)", rev[:min(12, len(rev))], dirty, when)
	}
	return s + " " + bi.GoVersion
}

// ErrNotRunning says nothing listens on a broker's endpoint.
var ErrNotRunning = errors.New("no broker running")

// ProbeTimeout bounds Probe: a listening broker completes the ZMTP
// handshake in microseconds, and a missing one is refused at once.
const ProbeTimeout = time.Second

// Probe checks within ProbeTimeout that a ZMTP peer of socket type
// ROUTER's kind listens on endpoint, by connecting as a DEALER and
// completing the handshake. It returns an error wrapping ErrNotRunning if
// the endpoint refuses connections or does not exist, and another error if
// something there does not answer as a broker, or runs as a uid other
// than ours, root or brokerUID. curve, if set, is used on tcp endpoints.
func Probe(ctx context.Context, endpoint string, brokerUID int, curve *zmtp.CurveOptions) error {
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	c, err := zmtp.Dial(ctx, endpoint, zmtp.Options{SocketType: "DEALER", BrokerUID: brokerUID, Curve: curve.ForEndpoint(endpoint)})
	switch {
	case err == nil:
		c.Close()
		return nil
	case errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("%w at %s", ErrNotRunning, endpoint)
	case ctx.Err() != nil:
		return fmt.Errorf("%s did not answer within %v", endpoint, ProbeTimeout)
	default:
		return fmt.Errorf("%s: %w", endpoint, err)
	}
}

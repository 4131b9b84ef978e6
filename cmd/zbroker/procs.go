package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"

	"github.com/zbroker/zbroker/internal/procs"
	"github.com/zbroker/zbroker/zmtp"
)

// procsSetting is --procs: how many Ps (threads running Go code at once)
// the broker runs with. "auto" runs one while one is enough
// (internal/procs), "default" leaves the runtime's default, a number
// fixes it.
type procsSetting struct{ v string }

func (p *procsSetting) String() string { return p.v }

func (p *procsSetting) Set(s string) error {
	if s != "auto" && s != "default" {
		if n, err := strconv.Atoi(s); err != nil || n < 1 {
			return fmt.Errorf("want auto, default or a number of Ps ≥ 1, not %q", s)
		}
	}
	p.v = s
	return nil
}

func registerProcsFlags(fs *flag.FlagSet) *procsSetting {
	p := &procsSetting{v: "auto"}
	fs.Var(p, "procs", "Go Ps (CPUs running the broker's code at once): auto (one while one is enough for the load, the default when it is not), default (the runtime's: every CPU the process may use), or a number; GOMAXPROCS in the environment takes precedence")
	return p
}

// apply sets the Ps, or starts the governor, and returns what applies
// (for the log) and the function that stops the governor. The governor
// judges by the messages the broker receives (zmtp.Received) unless
// clustered: then the embedded NATS server also works for the other
// nodes, which those messages do not count, and a P taken from that work
// would go unnoticed.
func (p *procsSetting) apply(log *slog.Logger, clustered bool) (string, func()) {
	switch {
	case os.Getenv("GOMAXPROCS") != "":
		return "GOMAXPROCS=" + os.Getenv("GOMAXPROCS"), func() {}
	case p.v == "default":
		return p.v, func() {}
	case p.v != "auto":
		n, _ := strconv.Atoi(p.v) // checked by Set
		runtime.GOMAXPROCS(n)
		return p.v, func() { runtime.SetDefaultGOMAXPROCS() }
	}
	work := zmtp.Received
	if clustered {
		work = nil
	}
	stop, ok := procs.Start(procs.Period, work, func(n int, s procs.Sample, why string) {
		log.Debug("procs decided", "procs", n, "why", why, "cpu", fmt.Sprintf("%.2f", s.CPU),
			"late_waiting", fmt.Sprintf("%.3f", s.Wait), "messages_per_s", fmt.Sprintf("%.0f", s.Work))
	})
	if !ok {
		return "default", stop
	}
	return "auto", stop
}

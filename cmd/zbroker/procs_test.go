package main

import (
	"flag"
	"io"
	"log/slog"
	"os"
	"runtime"
	"testing"
)

func TestProcsFlag(t *testing.T) {
	for _, c := range []struct {
		arg string
		ok  bool
	}{
		{"auto", true}, {"default", true}, {"1", true}, {"16", true},
		{"0", false}, {"-2", false}, {"many", false}, {"", false}, {"Auto", false},
	} {
		fs := flag.NewFlagSet("zbroker", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		p := registerProcsFlags(fs)
		err := fs.Parse([]string{"--procs", c.arg})
		if (err == nil) != c.ok {
			t.Errorf("--procs %q: error %v, want ok %v", c.arg, err, c.ok)
		}
		if c.ok && p.v != c.arg {
			t.Errorf("--procs %q: setting %q", c.arg, p.v)
		}
	}
}

func TestProcsApply(t *testing.T) {
	if os.Getenv("GOMAXPROCS") != "" || runtime.GOMAXPROCS(0) < 2 {
		t.Skip("GOMAXPROCS set, or one P already")
	}
	max := runtime.GOMAXPROCS(0)
	log := slog.New(slog.DiscardHandler)
	for _, c := range []struct {
		v, env, mode string
		during       int // Ps while applied; 0: not checked (the governor's)
	}{
		{v: "1", mode: "1", during: 1},
		{v: "default", mode: "default", during: max},
		{v: "auto", mode: "auto"},
		{v: "1", env: "2", mode: "GOMAXPROCS=2", during: max},
		{v: "auto", env: "2", mode: "GOMAXPROCS=2", during: max},
	} {
		t.Setenv("GOMAXPROCS", c.env)
		p := &procsSetting{v: c.v}
		mode, stop := p.apply(log, false)
		n := runtime.GOMAXPROCS(0)
		stop()
		if mode != c.mode || (c.during > 0 && n != c.during) {
			t.Errorf("--procs %s, GOMAXPROCS=%q: %q with %d Ps, want %q with %d", c.v, c.env, mode, n, c.mode, c.during)
		}
		if n := runtime.GOMAXPROCS(0); n != max {
			t.Errorf("--procs %s, GOMAXPROCS=%q: %d Ps once stopped, want the default %d", c.v, c.env, n, max)
		}
	}
}

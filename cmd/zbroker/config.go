package main

// Settings come from three places, strongest first: the command line,
// ZBROKER_* environment variables and the --config file. peterbourgon/ff
// reads the environment and the file into the same flag.FlagSet the
// command line uses, so every flag (including those other files of this
// package register) is settable in all three under one name, and the docs
// need one list.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/peterbourgon/ff/v3"
)

// envPrefix: --pipe-limit is ZBROKER_PIPE_LIMIT.
const envPrefix = "ZBROKER"

// commandLineOnly are flags that mean nothing in a file or the environment
// (ZBROKER_VERSION is a plausible variable for a deployment to set), or
// that are there spelled differently (-b and --broker are "name").
var commandLineOnly = map[string]bool{"version": true, "b": true, "broker": true}

// recorder stands for one flag while ff reads the environment and the
// file: it remembers the text each setting had and, when forward is set,
// passes it on to the real flag. A flag the command line set ignores
// both (the command line wins).
type recorder struct {
	name    string
	raw     map[string]string
	forward flag.Value
	ignore  bool
}

func (r recorder) String() string { return r.raw[r.name] }

func (r recorder) Set(v string) error {
	if r.ignore {
		return nil
	}
	if r.forward != nil {
		if err := r.forward.Set(v); err != nil {
			return err
		}
	}
	r.raw[r.name] = v
	return nil
}

// fromEnvAndFile reads ZBROKER_* variables and the config file at *config
// for every flag of fs not given on the command line (cmdline). It
// returns the text of each setting found; with apply, it also sets the
// flags. ff gives the environment precedence over the file.
func fromEnvAndFile(fs *flag.FlagSet, cmdline map[string]bool, config *string, apply bool) (map[string]string, error) {
	raw := map[string]string{}
	sub := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	sub.SetOutput(io.Discard)
	fs.VisitAll(func(f *flag.Flag) {
		if commandLineOnly[f.Name] {
			return
		}
		// --config on the command line still records what the file
		// says of itself, to refuse it.
		r := recorder{name: f.Name, raw: raw, ignore: cmdline[f.Name] && f.Name != "config"}
		if apply && !cmdline[f.Name] {
			r.forward = f.Value
		}
		sub.Var(r, f.Name, f.Usage)
	})
	envConfig := os.Getenv(envPrefix + "_CONFIG")
	err := ff.Parse(sub, nil,
		ff.WithEnvVarPrefix(envPrefix),
		ff.WithConfigFileVia(config),
		ff.WithConfigFileParser(ff.PlainParser))
	if err != nil {
		if *config != "" {
			return nil, fmt.Errorf("settings (%s_* environment, %s): %w", envPrefix, *config, err)
		}
		return nil, fmt.Errorf("settings (%s_* environment): %w", envPrefix, err)
	}
	if v, ok := raw["config"]; ok && v != envConfig {
		return nil, errors.New(*config + ": a config file cannot name another")
	}
	if cmdline["config"] {
		delete(raw, "config")
	}
	return raw, nil
}

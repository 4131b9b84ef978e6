package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"

	"github.com/zbroker/zbroker/internal/units"
	"github.com/zbroker/zbroker/majordomo"
	"github.com/zbroker/zbroker/zpipes"
)

// newLogger makes the broker's logger, its level held in level so that a
// reload can change it.
func newLogger(w io.Writer, format string, level *slog.LevelVar, levelName string, verbose bool) (*slog.Logger, error) {
	if err := setLevel(level, levelName, verbose); err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func setLevel(level *slog.LevelVar, name string, verbose bool) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(name)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", name)
	}
	if verbose {
		l = slog.LevelDebug
	}
	level.Set(l)
	return nil
}

// reloader applies, on SIGHUP, the settings of the environment and the
// config file that can change while the broker runs. raw holds the text of
// the settings in effect; a setting the command line gave is never
// reloaded (the command line wins).
type reloader struct {
	fs      *flag.FlagSet
	cmdline map[string]bool
	config  *string
	raw     map[string]string
	log     *slog.Logger
	// live applies a reloadable flag's new text and returns its old and
	// new effective values.
	live map[string]func(text string) (old, new string, err error)
}

func (r *reloader) logLevel(level *slog.LevelVar, s *settings) {
	// Both flags decide the one level: change one, recompute, or undo.
	change := func(update func()) (string, string, error) {
		old, keep := level.Level(), *s
		update()
		if err := setLevel(level, s.logLevel, s.verbose); err != nil {
			*s = keep
			return "", "", err
		}
		return old.String(), level.Level().String(), nil
	}
	r.live["log-level"] = func(text string) (string, string, error) {
		return change(func() { s.logLevel = text })
	}
	r.live["v"] = func(text string) (string, string, error) {
		v, err := strconv.ParseBool(text)
		if err != nil {
			return "", "", err
		}
		return change(func() { s.verbose = v })
	}
}

func (r *reloader) zpipesLimits(srv *zpipes.Server, o *zpipes.Options) {
	limit := func(p *int64) func(string) (string, string, error) {
		return func(text string) (string, string, error) {
			n, err := units.ParseSize(text)
			if err != nil {
				return "", "", err
			}
			old := *p
			*p = n
			*o = o.WithDefaults()
			srv.SetLimits(o.PipeLimit, o.TotalLimit)
			return units.FormatSize(old), units.FormatSize(*p), nil
		}
	}
	r.live["pipe-limit"] = limit(&o.PipeLimit)
	r.live["total-limit"] = limit(&o.TotalLimit)
}

func (r *reloader) majordomoLimits(srv *majordomo.Server, o *majordomo.Options) {
	r.live["mdp-queue-limit"] = func(text string) (string, string, error) {
		n, err := strconv.Atoi(text)
		if err != nil {
			return "", "", err
		}
		old := o.RequestQueueLimit
		o.RequestQueueLimit = n
		*o = o.WithDefaults()
		srv.SetQueueLimit(o.RequestQueueLimit)
		return strconv.Itoa(old), strconv.Itoa(o.RequestQueueLimit), nil
	}
}

// reload reads the environment and the config file again and applies what
// changed; a bad value or a setting that applies only at start is logged
// and the running value kept.
func (r *reloader) reload() {
	raw, err := fromEnvAndFile(r.fs, r.cmdline, r.config, false)
	if err != nil {
		r.log.Error("reload failed; nothing changed", "err", err)
		return
	}
	text := func(m map[string]string, name string) string {
		if v, ok := m[name]; ok {
			return v
		}
		return r.fs.Lookup(name).DefValue
	}
	keep := func(name string) {
		if v, ok := r.raw[name]; ok {
			raw[name] = v
		} else {
			delete(raw, name)
		}
	}
	var names []string
	for _, m := range []map[string]string{raw, r.raw} {
		for name := range m {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var changed []any
	for _, name := range slices.Compact(names) {
		was, now := text(r.raw, name), text(raw, name)
		if was == now {
			continue
		}
		apply, ok := r.live[name]
		if !ok {
			r.log.Warn("setting changed but applies only at start: restart zbroker to apply it",
				"setting", name, "running", was, "configured", now)
			keep(name)
			continue
		}
		old, nw, err := apply(now)
		if err != nil {
			r.log.Error("bad setting on reload; the running value is kept", "setting", name, "err", err)
			keep(name)
			continue
		}
		changed = append(changed, name, old+" -> "+nw)
	}
	r.raw = raw
	if len(changed) == 0 {
		r.log.Info("settings reloaded; nothing changed")
		return
	}
	r.log.Info("settings reloaded", changed...)
}

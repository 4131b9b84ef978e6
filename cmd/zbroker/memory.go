package main

import (
	"flag"
	"os"
	"runtime/debug"

	"github.com/zbroker/zbroker/internal/gcfloor"

	"github.com/zbroker/zbroker/internal/units"
)

// memoryHeadroom is what the memory limit allows beyond the bytes the
// configured limits let clients make the broker hold: connections,
// Majordomo and Clone state, the runtime itself.
const memoryHeadroom = 256 << 20

// memorySettings is --memory-limit: a soft limit for the Go runtime, so
// that garbage (every chunk read becomes garbage once written on) never
// takes the broker far past what its limits hold. Below it, a floor under
// the heap goal (internal/gcfloor, an eighth of the limit at most) keeps
// a small heap from being collected every few MiB (see BENCHMARKS.md).
type memorySettings struct{ limit int64 }

func registerMemoryFlags(fs *flag.FlagSet) *memorySettings {
	m := &memorySettings{}
	fs.Var(units.Size{P: &m.limit}, "memory-limit", "soft limit on the Go runtime's memory, beyond which it collects garbage harder (0: --total-limit + --receive-limit + 256MiB; GOMEMLIMIT in the environment takes precedence)")
	return m
}

// memoryLimit is the limit to apply for the given settings, or 0 when
// GOMEMLIMIT (env) already set one.
func memoryLimit(flagLimit, totalLimit, receiveLimit int64, env string) int64 {
	switch {
	case env != "":
		return 0
	case flagLimit > 0:
		return flagLimit
	}
	return totalLimit + receiveLimit + memoryHeadroom
}

// apply sets the runtime's memory limit and the heap floor under it, and
// returns the limit for the log.
func (m *memorySettings) apply(totalLimit, receiveLimit int64) int64 {
	if l := memoryLimit(m.limit, totalLimit, receiveLimit, os.Getenv("GOMEMLIMIT")); l > 0 {
		debug.SetMemoryLimit(l)
	}
	limit := debug.SetMemoryLimit(-1)
	gcfloor.Start(gcfloor.For(limit))
	return limit
}

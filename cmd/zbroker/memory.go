package main

import (
	"flag"
	"os"
	"runtime/debug"

	"github.com/zbroker/zbroker/internal/units"
)

// memoryHeadroom is what the memory limit allows beyond the bytes the
// configured limits let clients make the broker hold: connections,
// Majordomo and Clone state, the runtime itself.
const memoryHeadroom = 256 << 20

// memorySettings is --memory-limit: a soft limit for the Go runtime, so
// that garbage (every chunk read becomes garbage once written on) never
// takes the broker far past what its limits hold. It does not make the
// GC run less often below it (GOGC does that, at a cost in RSS; see
// BENCHMARKS.md).
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

// apply sets the runtime's memory limit and returns it for the log.
func (m *memorySettings) apply(totalLimit, receiveLimit int64) int64 {
	if l := memoryLimit(m.limit, totalLimit, receiveLimit, os.Getenv("GOMEMLIMIT")); l > 0 {
		debug.SetMemoryLimit(l)
	}
	return debug.SetMemoryLimit(-1)
}

//go:build unix

package procs

import (
	"syscall"
	"time"
)

// cpuTime is the user and system time the process has used, or -1 if
// it cannot be read.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

//go:build !unix

package procs

import "time"

// cpuTime cannot be read here: Start does nothing.
func cpuTime() time.Duration { return -1 }

package zmtp

import "sync/atomic"

// received counts the events that every connection in this process has
// delivered: a cheap measure of the work the process does, which the
// broker's scheduling governor (internal/procs) compares between one P
// and many. One atomic add per batch, not per message.
var received atomic.Uint64

// Received is the number of events (messages, mostly) that all
// connections in this process have delivered so far.
func Received() uint64 { return received.Load() }

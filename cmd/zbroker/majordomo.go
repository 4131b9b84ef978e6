package main

import (
	"flag"
	"time"

	"github.com/zbroker/zbroker/internal/units"
	"github.com/zbroker/zbroker/majordomo"
)

// majordomoFlags registers the Majordomo flags that serve the peers people
// already run (the zguide's clients and workers); see docs/zguide.md.
func majordomoFlags(fs *flag.FlagSet, o *majordomo.Options) {
	fs.DurationVar(&o.BusyTimeout, "mdp-busy-timeout", 15*time.Minute,
		"how long a Majordomo worker holding a request may stay silent before it is expired and the request fails")
	o.ClientQueueLimit = 64 << 20
	fs.Var(units.Size{P: &o.ClientQueueLimit}, "mdp-client-queue",
		"bytes of replies waiting for one Majordomo client before the broker stops reading its requests")
}

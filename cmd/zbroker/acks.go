package main

import (
	"flag"

	"github.com/zbroker/zbroker/internal/units"
	"github.com/zbroker/zbroker/zpipes"
)

// acksFlags bound what one acknowledging zpipes reader (OPEN / pipe / ACK,
// docs/zpipes.md) may hold unacknowledged.
func acksFlags(fs *flag.FlagSet, zp *zpipes.Options) {
	zp.MaxUnacked, zp.MaxUnackedBytes = 10_000, 64<<20
	fs.IntVar(&zp.MaxUnacked, "max-unacked", zp.MaxUnacked, "chunks one acknowledging zpipes reader may hold unacknowledged; past it its READs wait until it ACKs")
	fs.Var(units.Size{P: &zp.MaxUnackedBytes}, "max-unacked-bytes", "payload bytes one acknowledging zpipes reader may hold unacknowledged; past it its READs wait until it ACKs")
}

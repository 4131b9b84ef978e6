package cli

import (
	"flag"

	"github.com/zbroker/zbroker/internal/curvekey"
	"github.com/zbroker/zbroker/zmtp"
)

// Curve holds the client programs' CURVE flags (docs/curve.md).
type Curve struct {
	ServerKey string // the broker's public key, Z85
	KeyFile   string // our secret key file
}

// CurveFlags registers --curve-server-key and --curve-key-file on fs.
func CurveFlags(fs *flag.FlagSet, c *Curve) {
	fs.StringVar(&c.ServerKey, "curve-server-key", "", "connect to tcp endpoints with CURVE, trusting the broker's public `key` (Z85)")
	fs.StringVar(&c.KeyFile, "curve-key-file", "", "our CURVE secret key `file` (default: a new key pair)")
}

// CurveHelp is the --help text of CurveFlags, for the programs' usage.
const CurveHelp = `  --curve-server-key KEY
                      connect to a tcp endpoint with CURVE, trusting the
                      broker's public KEY (40 Z85 characters); ipc
                      endpoints are never on CURVE (docs/curve.md)
  --curve-key-file FILE
                      our CURVE secret key (zbroker keygen --secret-file
                      makes one); without it a new key pair is made, which
                      only a broker admitting any client accepts
`

// Options returns the CURVE options the flags ask for, nil without
// --curve-server-key. Errors are usage errors.
func (c Curve) Options() (*zmtp.CurveOptions, error) {
	if c.ServerKey == "" {
		if c.KeyFile != "" {
			return nil, Usagef("--curve-key-file needs --curve-server-key (the broker's public key)")
		}
		return nil, nil
	}
	server, err := zmtp.ParseCurveKey(c.ServerKey)
	if err != nil {
		return nil, Usagef("--curve-server-key: %v", err)
	}
	o := &zmtp.CurveOptions{ServerKey: server}
	if c.KeyFile == "" {
		o.PublicKey, o.SecretKey, err = zmtp.NewCurveKeyPair()
	} else {
		o.PublicKey, o.SecretKey, err = curvekey.LoadSecret(c.KeyFile)
	}
	if err != nil {
		return nil, Usagef("--curve-key-file: %v", err)
	}
	return o, nil
}

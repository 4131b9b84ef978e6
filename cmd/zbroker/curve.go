package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"

	"github.com/zbroker/zbroker/clone"
	"github.com/zbroker/zbroker/internal/cli"
	"github.com/zbroker/zbroker/internal/curvekey"
	"github.com/zbroker/zbroker/majordomo"
	"github.com/zbroker/zbroker/zmtp"
	"github.com/zbroker/zbroker/zpipes"
)

// curveFlags put the broker's tcp endpoints on CURVE (docs/curve.md).
type curveFlags struct {
	secretFile  string
	clientsFile string
	// admit decides on client keys; reload swaps it while handshakes
	// read it.
	admit atomic.Pointer[func(zmtp.CurveKey) error]
}

func registerCurveFlags(fs *flag.FlagSet) *curveFlags {
	c := &curveFlags{}
	fs.StringVar(&c.secretFile, "curve-secret-key-file", "", "put every tcp endpoint on CURVE, with the broker's secret key from `file` (40 Z85 characters, as zbroker keygen makes; mode 0600)")
	fs.StringVar(&c.clientsFile, "curve-clients", "", "admit the CURVE clients whose public keys are in `file` (Z85, one per line, # comments) or czmq certificate directory, read again on SIGHUP; \"*\" admits any client that knows the broker's public key")
	return c
}

// apply loads the keys and gives the services their CURVE options. It
// reports whether CURVE is on.
func (c *curveFlags) apply(log *slog.Logger, zp *zpipes.Options, mdp *majordomo.Options, kv *clone.Options) (bool, error) {
	switch {
	case c.secretFile == "" && c.clientsFile == "":
		return false, nil
	case c.secretFile == "":
		return false, errors.New("--curve-clients needs --curve-secret-key-file")
	case c.clientsFile == "":
		return false, errors.New(`--curve-secret-key-file needs --curve-clients: a file of admitted client keys, a czmq certificate directory, or "*" for any client that knows the broker's public key`)
	}
	pub, sec, err := curvekey.LoadSecret(c.secretFile)
	if err != nil {
		return false, fmt.Errorf("--curve-secret-key-file: %w", err)
	}
	opts := &zmtp.CurveOptions{PublicKey: pub, SecretKey: sec}
	admitted := "any"
	if c.clientsFile != "*" {
		n, err := c.loadClients()
		if err != nil {
			return false, err
		}
		opts.Authorize = func(k zmtp.CurveKey) error { return (*c.admit.Load())(k) }
		admitted = strconv.Itoa(n)
	}
	zp.Curve, mdp.Curve, kv.Curve = opts, opts, opts
	log.Info("CURVE on tcp endpoints", "public_key", pub.String(), "admitted_clients", admitted)
	return true, nil
}

func (c *curveFlags) loadClients() (int, error) {
	keys, err := curvekey.LoadClients(c.clientsFile)
	if err != nil {
		return 0, fmt.Errorf("--curve-clients: %w", err)
	}
	if len(keys) == 0 {
		return 0, fmt.Errorf(`--curve-clients: no keys in %s (use "*" to admit any client)`, c.clientsFile)
	}
	admit := curvekey.Admit(keys)
	c.admit.Store(&admit)
	return len(keys), nil
}

// reload reads the admitted client keys again (on SIGHUP). New handshakes
// use the new list; connections already open are not affected. A file
// that cannot be read or lists no key leaves the running list in place.
func (c *curveFlags) reload(log *slog.Logger) {
	if c.admit.Load() == nil {
		return // CURVE off, or any client admitted
	}
	n, err := c.loadClients()
	if err != nil {
		log.Error("CURVE client keys not reloaded; the running list is kept", "err", err)
		return
	}
	log.Info("CURVE client keys reloaded", "admitted_clients", n)
}

const keygenUsage = `usage: zbroker keygen [--secret-file FILE]

Prints a new CURVE key pair in Z85, as libzmq's curve_keygen does. With
--secret-file the secret key goes to FILE instead (created with mode 0600,
never overwritten), ready for --curve-secret-key-file or a client's
--curve-key-file, and only the public key is printed.

  --secret-file FILE  write the secret key to FILE instead of printing it
`

// keygen is "zbroker keygen".
func keygen(args []string, stdout, stderr io.Writer) int {
	cmd := &cli.Command{Name: "zbroker keygen", Stdout: stdout, Stderr: stderr}
	fs := cmd.FlagSet()
	secretFile := fs.String("secret-file", "", "write the secret key to `file` instead of printing it")
	cmd.Usage = keygenUsage
	words, err := cli.Parse(fs, args)
	if err != nil {
		return cmd.Exit(err)
	}
	if len(words) > 0 {
		return cmd.Exit(cli.Usagef("unexpected arguments %q", words))
	}
	pub, sec, err := zmtp.NewCurveKeyPair()
	if err != nil {
		return cmd.Exit(err)
	}
	if *secretFile != "" {
		if err := curvekey.WriteSecret(*secretFile, sec); err != nil {
			return cmd.Exit(err)
		}
		fmt.Fprintf(stdout, "== CURVE PUBLIC KEY ==\n%s\n", pub)
		return cli.ExitOK
	}
	fmt.Fprintf(stdout, "== CURVE PUBLIC KEY ==\n%s\n== CURVE SECRET KEY ==\n%s\n", pub, sec)
	return cli.ExitOK
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/zbroker/zbroker/clone"
	"github.com/zbroker/zbroker/internal/units"
	"github.com/zbroker/zbroker/majordomo"
	"github.com/zbroker/zbroker/zmtp"
	"github.com/zbroker/zbroker/zpipes"
)

// securityFlags are the broker's access-control and connection-limit
// flags (docs/security.md).
type securityFlags struct {
	guard       zmtp.GuardConfig
	insecureTCP bool
	// tcpAuthenticated: CURVE (curve.go) authenticates every tcp peer.
	tcpAuthenticated bool
	ipcDir           string
	ipcMode          uint64
	ipcGroup         string
}

func registerSecurityFlags(fs *flag.FlagSet) *securityFlags {
	s := &securityFlags{ipcMode: 0o750}
	fs.Func("allow-uid", "also admit ipc peers of these `uids` (comma-separated numbers or user names; default: own uid and root only)", func(v string) error {
		return parseIDs(v, lookupUID, &s.guard.AllowUIDs)
	})
	fs.Func("allow-gid", "also admit ipc peers whose primary or supplementary group is one of these `gids` (numbers or group names)", func(v string) error {
		return parseIDs(v, lookupGID, &s.guard.AllowGIDs)
	})
	fs.BoolVar(&s.guard.AnyLocal, "allow-any-local", false, "admit ipc peers of every local uid (no credential check)")
	fs.BoolVar(&s.insecureTCP, "insecure-tcp", false, "allow tcp endpoints on non-loopback addresses, which anyone who can reach them may use")
	fs.StringVar(&s.ipcDir, "ipc-dir", "", "serve the default endpoints as ipc files in `dir`, created with --ipc-mode (instead of abstract names)")
	fs.Func("ipc-mode", "permissions (octal) --ipc-dir is given (default 0750)", func(v string) error {
		m, err := strconv.ParseUint(v, 8, 32)
		if err != nil || m > 0o777 {
			return fmt.Errorf("want an octal mode like 0750")
		}
		s.ipcMode = m
		return nil
	})
	fs.StringVar(&s.ipcGroup, "ipc-group", "", "`group` owning --ipc-dir (default: our primary group)")
	fs.IntVar(&s.guard.MaxConnections, "max-connections", 10000, "connections open at once across all services, beyond which new ones are refused (0: no limit)")
	fs.IntVar(&s.guard.MaxConnectionsPerUID, "max-connections-per-uid", 0, "connections open at once from one local uid (0: no limit)")
	s.guard.ReceiveBudget = 16 << 20
	fs.Var(units.Size{P: &s.guard.ReceiveBudget}, "receive-limit", "bytes held for messages being received, all connections together; over it, peers in the middle of a message are not read until there is room (0: no limit)")
	fs.DurationVar(&s.guard.MessageTimeout, "message-timeout", time.Minute, "time a peer has to send a whole message once it began; slower peers are disconnected (0: no limit)")
	fs.DurationVar(&s.guard.IdleTimeout, "idle-timeout", 0, "disconnect peers silent this long between messages (0: never)")
	return s
}

func parseIDs(v string, lookup func(string) (int, error), dst *[]int) error {
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		id, err := strconv.Atoi(f)
		if err != nil {
			if id, err = lookup(f); err != nil {
				return err
			}
		}
		if id < 0 {
			return fmt.Errorf("negative id %d", id)
		}
		*dst = append(*dst, id)
	}
	return nil
}

func lookupUID(name string) (int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(u.Uid)
}

func lookupGID(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}

// apply prepares --ipc-dir, checks the tcp endpoints and gives the
// services one shared Guard, so the connection limits are broker-wide.
func (s *securityFlags) apply(log *slog.Logger, zp *zpipes.Options, mdp *majordomo.Options, kv *clone.Options) error {
	if s.ipcDir != "" {
		if err := prepareIPCDir(s.ipcDir, os.FileMode(s.ipcMode), s.ipcGroup); err != nil {
			return err
		}
		for ep, file := range map[*string]string{
			&zp.Endpoint: "zpipes", &mdp.Endpoint: "majordomo", &kv.SnapshotEndpoint: "clone-snapshot",
			&kv.PublisherEndpoint: "clone-updates", &kv.CollectorEndpoint: "clone-collector",
		} {
			if *ep == "" {
				*ep = "ipc://" + filepath.Join(s.ipcDir, file)
			}
		}
	} else if s.ipcGroup != "" {
		return errors.New("--ipc-group needs --ipc-dir")
	}
	if !s.insecureTCP && !s.tcpAuthenticated {
		for _, ep := range []string{zp.Endpoint, mdp.Endpoint, kv.SnapshotEndpoint, kv.PublisherEndpoint, kv.CollectorEndpoint} {
			if exposedTCP(ep) {
				return fmt.Errorf("%s would accept anyone who can reach it (tcp has no peer credentials): bind a loopback address, put tcp on CURVE (--curve-secret-key-file, docs/curve.md), or pass --insecure-tcp (see docs/security.md)", ep)
			}
		}
	}
	s.guard.Logger = log
	log.Info("ipc access", "allow_uids", s.guard.AllowUIDs, "allow_gids", s.guard.AllowGIDs,
		"allow_any_local", s.guard.AnyLocal, "max_connections", s.guard.MaxConnections,
		"max_connections_per_uid", s.guard.MaxConnectionsPerUID, "receive_limit", units.FormatSize(s.guard.ReceiveBudget),
		"message_timeout", s.guard.MessageTimeout, "idle_timeout", s.guard.IdleTimeout)
	g := zmtp.NewGuard(s.guard)
	zp.Guard, mdp.Guard, kv.Guard = g, g, g
	return nil
}

// exposedTCP reports a tcp endpoint bound beyond loopback ("*", an
// interface name, a routable address or host name).
func exposedTCP(endpoint string) bool {
	rest, ok := strings.CutPrefix(endpoint, "tcp://")
	if !ok {
		return false
	}
	host, _, err := net.SplitHostPort(rest)
	if err != nil {
		return true
	}
	if host == "localhost" || host == "lo" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// prepareIPCDir creates dir (or takes an existing one of ours) and sets
// its mode and group explicitly rather than leaving them to the umask:
// only those who can search the directory can reach the sockets in it,
// and nobody else can create a file there to impersonate the broker.
func prepareIPCDir(dir string, mode os.FileMode, group string) error {
	if err := os.Mkdir(dir, mode); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("--ipc-dir: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("--ipc-dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("--ipc-dir: %s exists and is not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("--ipc-dir: %s belongs to uid %d, not to us (uid %d): refusing to serve from a directory another user controls", dir, st.Uid, os.Geteuid())
	}
	if group != "" {
		gid, err := strconv.Atoi(group)
		if err != nil {
			if gid, err = lookupGID(group); err != nil {
				return fmt.Errorf("--ipc-group: %w", err)
			}
		}
		if err := os.Lchown(dir, -1, gid); err != nil {
			return fmt.Errorf("--ipc-group: %w", err)
		}
	}
	if err := os.Chmod(dir, mode); err != nil {
		return fmt.Errorf("--ipc-dir: %w", err)
	}
	return nil
}

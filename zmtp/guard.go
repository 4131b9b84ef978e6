package zmtp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Peer identifies the process at the other end of a connection, for
// access checks and audit logs.
type Peer struct {
	// UID, GID and PID come from SO_PEERCRED on ipc connections: the
	// peer's credentials when it connected (or, seen from a client, when
	// the broker bound the endpoint). They are -1 on tcp.
	UID, GID, PID int
	// Addr is a tcp peer's address; empty on ipc.
	Addr string
}

// LogValue renders a peer as uid and pid (ipc) or address (tcp).
func (p Peer) LogValue() slog.Value {
	if p.Addr != "" {
		return slog.GroupValue(slog.String("addr", p.Addr))
	}
	return slog.GroupValue(slog.Int("uid", p.UID), slog.Int("pid", p.PID))
}

func (p Peer) String() string {
	if p.Addr != "" {
		return p.Addr
	}
	return "uid " + strconv.Itoa(p.UID) + " pid " + strconv.Itoa(p.PID)
}

// Peer says who is at the other end of the connection.
func (c *Conn) Peer() Peer { return c.peer }

// Access says which local processes may connect to ipc endpoints. By
// default only the broker's own effective uid and root may: abstract ipc
// names have no file permissions, so without this every local account
// could use (and spy on) every service.
type Access struct {
	// AllowUIDs and AllowGIDs widen the default. A peer matches a gid if
	// it is the primary gid it connected with, or one of its
	// supplementary groups as /proc/PID/status lists them when it
	// connects (see supplementaryGroups for the limits of that).
	AllowUIDs []int
	AllowGIDs []int
	// AnyLocal admits every local process (no check at all).
	AnyLocal bool
}

// GuardConfig configures a Guard. Zero values mean no limit.
type GuardConfig struct {
	Access
	// MaxConnections bounds the connections (handshaking or established)
	// of all sockets sharing the Guard; MaxConnectionsPerUID bounds
	// those of one local uid (tcp peers count only in the total).
	MaxConnections       int
	MaxConnectionsPerUID int
	// ReceiveBudget bounds the bytes held for reading by all connections
	// together: their 64 KiB read buffers (held only while a peer has
	// bytes for us) and the bodies of messages still arriving. Over it a
	// connection reads no more until there is room. One connection at a
	// time may exceed it, so a message larger than the budget still gets
	// through.
	ReceiveBudget int64
	// MessageTimeout is how long a peer may take to send a message once
	// its first byte arrived; IdleTimeout how long it may send nothing
	// between messages. The connection is dropped after either. A
	// shorter MessageTimeout than Options.HandshakeTimeout bounds the
	// handshake too.
	MessageTimeout time.Duration
	IdleTimeout    time.Duration
	// Logger receives refusals. Default slog.Default().
	Logger *slog.Logger
}

// Guard admits peers to a broker's listening sockets. One Guard shared by
// all of a broker's sockets (Options.Guard) makes its limits broker-wide.
type Guard struct {
	cfg  GuardConfig
	uids map[int]bool
	gids map[int]bool
	log  *slog.Logger
	budget

	mu      sync.Mutex
	conns   int
	perUID  map[int]int
	refused map[string]*refusalNote
}

// refusalNote rate-limits the log lines of one kind of refusal: libzmq
// peers reconnect every 100 ms, and each attempt is refused again.
type refusalNote struct {
	last       time.Time
	suppressed int
}

const refusalLogEvery = 10 * time.Second

// NewGuard returns a Guard applying cfg.
func NewGuard(cfg GuardConfig) *Guard {
	g := &Guard{
		cfg:     cfg,
		uids:    map[int]bool{os.Geteuid(): true, 0: true},
		gids:    map[int]bool{},
		log:     cfg.Logger,
		perUID:  map[int]int{},
		refused: map[string]*refusalNote{},
	}
	if g.log == nil {
		g.log = slog.Default()
	}
	g.budget.limit = cfg.ReceiveBudget
	for _, u := range cfg.AllowUIDs {
		g.uids[u] = true
	}
	for _, gid := range cfg.AllowGIDs {
		g.gids[gid] = true
	}
	return g
}

// admit decides, right after accept and before anything is read or
// allocated for the connection, whether a peer may proceed. An admitted
// peer must be released when its connection ends.
func (g *Guard) admit(nc net.Conn, endpoint string) (Peer, bool) {
	p := Peer{UID: -1, GID: -1, PID: -1}
	if _, ok := nc.(*net.UnixConn); ok {
		var err error
		p.UID, p.GID, p.PID, err = peerCred(nc)
		if err != nil && !g.cfg.AnyLocal {
			g.refuse(endpoint, p, "cannot read peer credentials: "+err.Error())
			return p, false
		}
		if !g.cfg.AnyLocal && !g.allowed(p) {
			g.refuse(endpoint, p, "uid not allowed")
			return p, false
		}
	} else if a := nc.RemoteAddr(); a != nil {
		p.Addr = a.String()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cfg.MaxConnections > 0 && g.conns >= g.cfg.MaxConnections {
		g.refuseLocked(endpoint, p, "too many connections", "limit", g.cfg.MaxConnections)
		return p, false
	}
	if g.cfg.MaxConnectionsPerUID > 0 && p.UID >= 0 && g.perUID[p.UID] >= g.cfg.MaxConnectionsPerUID {
		g.refuseLocked(endpoint, p, "too many connections from this uid", "limit", g.cfg.MaxConnectionsPerUID)
		return p, false
	}
	g.conns++
	if p.UID >= 0 {
		g.perUID[p.UID]++
	}
	return p, true
}

// release gives back what admit counted.
func (g *Guard) release(p Peer) {
	g.mu.Lock()
	g.conns--
	if p.UID >= 0 {
		if g.perUID[p.UID]--; g.perUID[p.UID] <= 0 {
			delete(g.perUID, p.UID)
		}
	}
	g.mu.Unlock()
}

func (g *Guard) allowed(p Peer) bool {
	if g.uids[p.UID] || g.gids[p.GID] {
		return true
	}
	if len(g.gids) == 0 {
		return false
	}
	groups, err := supplementaryGroups(p.PID)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(groups, func(gid int) bool { return g.gids[gid] })
}

func (g *Guard) refuse(endpoint string, p Peer, reason string, attrs ...any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refuseLocked(endpoint, p, reason, attrs...)
}

// refuseLocked logs a refusal, at most once per refusalLogEvery for each
// reason and uid (or tcp host), with the count of those not logged.
func (g *Guard) refuseLocked(endpoint string, p Peer, reason string, attrs ...any) {
	key := reason + "\x00" + strconv.Itoa(p.UID)
	if p.Addr != "" {
		host, _, _ := net.SplitHostPort(p.Addr)
		key = reason + "\x00" + host
	}
	now := time.Now()
	n := g.refused[key]
	if n != nil && now.Sub(n.last) < refusalLogEvery {
		n.suppressed++
		return
	}
	if n == nil {
		if len(g.refused) >= 4096 { // many distinct tcp hosts: start over
			clear(g.refused)
		}
		n = &refusalNote{}
		g.refused[key] = n
	}
	attrs = append([]any{"endpoint", endpoint, "peer", p, "reason", reason}, attrs...)
	if n.suppressed > 0 {
		attrs = append(attrs, "refused_since_last_log", n.suppressed)
	}
	n.last, n.suppressed = now, 0
	g.log.Warn("peer refused", attrs...)
}

var errNoPeerCred = errors.New("peer credentials (SO_PEERCRED) are only read on Linux")

// UntrustedBrokerError is returned by Dial when the process serving an
// ipc endpoint runs as a uid the client does not trust: possibly another
// user's process bound the name first to receive what clients send.
type UntrustedBrokerError struct {
	Endpoint string
	Broker   Peer // who serves the endpoint
	Want     int  // the uid expected (root is always trusted)
}

func (e *UntrustedBrokerError) Error() string {
	return fmt.Sprintf("zmtp: refusing %s: it is served by uid %d (pid %d), not by uid %d or root, so another user's process may have taken its name; if uid %d runs the broker you mean, pass --broker-uid %d (BrokerUID in Go)",
		e.Endpoint, e.Broker.UID, e.Broker.PID, e.Want, e.Broker.UID, e.Broker.UID)
}

// checkBroker verifies, before anything is sent, that an ipc endpoint is
// served by the expected uid or root. want <= 0 means our own uid.
func checkBroker(nc net.Conn, endpoint string, want int) (Peer, error) {
	p := Peer{UID: -1, GID: -1, PID: -1}
	if _, ok := nc.(*net.UnixConn); !ok {
		if a := nc.RemoteAddr(); a != nil {
			p.Addr = a.String()
		}
		return p, nil
	}
	if want <= 0 {
		want = os.Geteuid()
	}
	var err error
	p.UID, p.GID, p.PID, err = peerCred(nc)
	if errors.Is(err, errNoPeerCred) {
		return p, nil // no way to check on this system
	}
	if err != nil {
		return p, fmt.Errorf("zmtp: %s: cannot check who serves it: %w", endpoint, err)
	}
	if p.UID != want && p.UID != 0 {
		return p, &UntrustedBrokerError{Endpoint: endpoint, Broker: p, Want: want}
	}
	return p, nil
}

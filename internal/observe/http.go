package observe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HTTPOptions configure the HTTP endpoint.
type HTTPOptions struct {
	// Limit is how many pipes and Majordomo services get series of their
	// own in /metrics (the deepest and busiest), and how many of them and
	// of each service's connections /stats lists unless asked for more
	// with ?limit=N. Default DefaultLimit.
	Limit int
	// Pprof serves Go's profiler under /debug/pprof/.
	Pprof bool
	// AnyAddress allows a non-loopback address. Metrics and stats show
	// pipe and service names and who is connected, and pprof more: by
	// default only this machine may see them.
	AnyAddress bool
	Logger     *slog.Logger
}

// maxListed bounds ?limit= so one request cannot make a service list
// millions of pipes.
const maxListed = 100000

// maxReports bounds the Reports gathered at once; other requests wait
// their turn, so a flood of requests costs the services' goroutines no
// more than a few snapshots in a row. Only the gathering takes a turn,
// not the writing: a client that reads slowly holds up nobody else.
const maxReports = 2

// reporter gathers Reports, maxReports at a time.
type reporter struct {
	b     *Broker
	turns chan struct{}
}

func (rp *reporter) report(ctx context.Context, limit int) (Report, error) {
	select {
	case rp.turns <- struct{}{}:
		defer func() { <-rp.turns }()
		return rp.b.Report(ctx, limit), nil
	case <-ctx.Done():
		return Report{}, ctx.Err()
	}
}

// HTTPServer serves /metrics, /stats, /healthz and, if asked, pprof.
type HTTPServer struct {
	srv  *http.Server
	addr string
	done chan struct{}
}

// ListenHTTP binds addr (host:port, port 0 for any) and serves in the
// background.
func ListenHTTP(addr string, b *Broker, o HTTPOptions) (*HTTPServer, error) {
	if o.Limit <= 0 {
		o.Limit = DefaultLimit
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--http: %w", err)
	}
	// The address actually bound decides, so a name that resolves
	// elsewhere or an empty host (every interface) is caught too.
	if ip := l.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() && !o.AnyAddress {
		l.Close()
		return nil, fmt.Errorf("--http %s: %s is not a loopback address; metrics and stats show pipe names and peers, so bind 127.0.0.1 or [::1], or add --insecure-tcp", addr, ip)
	}
	mux := http.NewServeMux()
	rp := &reporter{b: b, turns: make(chan struct{}, maxReports)}
	mux.Handle("GET /metrics", promhttp.HandlerFor(newRegistry(rp, o.Limit), promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
	}))
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		limit := o.Limit
		if s := r.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || n > maxListed {
				http.Error(w, fmt.Sprintf("limit: want a number from 0 to %d", maxListed), http.StatusBadRequest)
				return
			}
			limit = n
		}
		report, err := rp.report(r.Context(), limit)
		if err != nil {
			return // the client is gone
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(report)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		report, err := rp.report(r.Context(), 0)
		if err != nil {
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !report.Healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprint(w, healthText(report))
	})
	if o.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "zbroker %s: /metrics /stats /healthz", b.Name)
		if o.Pprof {
			fmt.Fprint(w, " /debug/pprof/")
		}
		fmt.Fprintln(w)
	})
	h := &HTTPServer{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug),
		},
		addr: l.Addr().String(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(h.done)
		if err := h.srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			o.Logger.Error("HTTP endpoint failed", "addr", h.addr, "err", err)
		}
	}()
	return h, nil
}

// Addr is the address bound, with the real port.
func (h *HTTPServer) Addr() string { return h.addr }

// Close stops serving, letting requests in progress finish for a moment.
func (h *HTTPServer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if h.srv.Shutdown(ctx) != nil {
		h.srv.Close()
	}
	<-h.done
}

// healthText says which services are serving, one per line.
func healthText(r Report) string {
	var b strings.Builder
	line := func(name string, h Health) {
		if h.Serving {
			fmt.Fprintf(&b, "%s: serving\n", name)
		} else {
			fmt.Fprintf(&b, "%s: not serving: %s\n", name, h.Error)
		}
	}
	if r.Zpipes != nil {
		line("zpipes", r.Zpipes.Health)
	}
	if r.Majordomo != nil {
		line("majordomo", r.Majordomo.Health)
	}
	if r.Clone != nil {
		line("clone", r.Clone.Health)
	}
	return b.String()
}

package observe

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/zbroker/zbroker/clone"
	"github.com/zbroker/zbroker/majordomo"
	"github.com/zbroker/zbroker/zmtp"
	"github.com/zbroker/zbroker/zpipes"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const badName = "bad\xffname" // not UTF-8

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startBroker runs the three services under a fresh name.
func startBroker(t *testing.T) *Broker {
	t.Helper()
	name := "observe-" + rand.Text()[:10]
	zp, err := zpipes.Start(zpipes.Options{Name: name, PipeLimit: 4096, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { zp.Close() })
	md, err := majordomo.Start(majordomo.Options{Name: name, RequestQueueLimit: 1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { md.Close() })
	kv, err := clone.Start(clone.Options{Name: name, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kv.Close() })
	return &Broker{Name: name, Zpipes: zp, Majordomo: md, Clone: kv}
}

// traffic puts a known state into b:
//   - zpipes: "deep" 3 chunks (5 written, 2 read by a reader), "held" 2
//     chunks and one WRITE held by the 4 KiB pipe limit, badName 2
//     chunks, "shallow" 1 chunk: 10 written, 2 read, 8 queued;
//   - Majordomo: service "echo" with 1 worker holding 1 request and 1
//     request queued; one 503 (queue full) and one 400 (no body);
//   - Clone: keys k1 and k2, sequence 3, one client (1 subscriber, 1
//     publisher).
func traffic(t *testing.T, b *Broker) {
	t.Helper()
	ctx := testCtx(t)
	dialZ := func() *zpipes.Client {
		c, err := zpipes.DialEndpoint(ctx, b.Zpipes.Endpoint())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Disconnect() })
		return c
	}
	w, r := dialZ(), dialZ()
	write := func(pipe string, n, size int) {
		if err := w.Open(ctx, pipe); err != nil {
			t.Fatal(err)
		}
		for range n {
			if err := w.Write(ctx, pipe, make([]byte, size)); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("deep", 5, 100)
	write(badName, 2, 10)
	write("shallow", 1, 10)
	write("held", 2, 2000)
	// Over the pipe limit: held, and so is every later reply to w.
	w.WriteAsync("held", make([]byte, 2000))
	if err := r.Open(ctx, "deep"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := r.Read(ctx, "deep"); err != nil {
			t.Fatal(err)
		}
	}
	for b.Zpipes.Stats().Stalled != 1 {
		time.Sleep(time.Millisecond)
	}

	dial := func() *zmtp.Conn {
		c, err := zmtp.Dial(ctx, b.Majordomo.Endpoint(), zmtp.Options{SocketType: "DEALER"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	frames := func(s ...string) [][]byte {
		f := make([][]byte, len(s))
		for i := range s {
			f[i] = []byte(s[i])
		}
		return f
	}
	worker, client := dial(), dial()
	client.Send(frames("MDPC02", "\x01", majordomo.MMIFailures, "on")) // failure replies, please
	if _, err := client.Recv(); err != nil {
		t.Fatal(err)
	}
	worker.Send(frames("MDPW02", "\x01", "echo"))
	for b.Majordomo.Stats().Workers != 1 {
		time.Sleep(time.Millisecond)
	}
	client.Send(frames("MDPC02", "\x01", "echo", "1"))
	if _, err := worker.Recv(); err != nil { // the request: held, never answered
		t.Fatal(err)
	}
	client.Send(frames("MDPC02", "\x01", "echo", "2")) // queued
	client.Send(frames("MDPC02", "\x01", "echo", "3")) // 503
	client.Send(frames("MDPC02", "\x01", "echo"))      // 400
	for range 2 {
		if _, err := client.Recv(); err != nil {
			t.Fatal(err)
		}
	}

	kv, err := clone.Connect(ctx, clone.ClientOptions{Name: b.Name, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kv.Close() })
	for _, k := range []string{"k1", "k2", "k1"} {
		if err := kv.SetWait(ctx, k, []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
}

func startHTTP(t *testing.T, b *Broker, o HTTPOptions) string {
	t.Helper()
	o.Logger = quiet
	h, err := ListenHTTP("127.0.0.1:0", b, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return "http://" + h.Addr()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// scrape fetches /metrics and parses it with the Prometheus parser.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	return fams
}

// value is the value of the series of family name with the given labels
// ("k", "v", ...); ok is false if there is no such series.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		if len(m.Label) != len(labels)/2 {
			continue
		}
		for i, l := range m.Label {
			if l.GetName() != labels[2*i] || l.GetValue() != labels[2*i+1] {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func TestMetricsWithTraffic(t *testing.T) {
	b := startBroker(t)
	traffic(t, b)
	fams := scrape(t, startHTTP(t, b, HTTPOptions{}))
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"zbroker_up", []string{"service", "zpipes"}, 1},
		{"zbroker_up", []string{"service", "clone"}, 1},
		{"zbroker_connections", []string{"service", "zpipes"}, 2},
		{"zbroker_connections", []string{"service", "majordomo"}, 2},
		{"zbroker_connections", []string{"service", "clone"}, 2},
		{"zbroker_pipe_queued_chunks", []string{"pipe", "deep"}, 3},
		{"zbroker_pipe_queued_bytes", []string{"pipe", "deep"}, 3 * (100 + 4 + 64)},
		{"zbroker_pipe_writers", []string{"pipe", "deep"}, 1},
		{"zbroker_pipe_reader", []string{"pipe", "deep"}, 1},
		{"zbroker_pipe_reader", []string{"pipe", "held"}, 0},
		{"zbroker_pipe_held_writes", []string{"pipe", "held"}, 1},
		{"zbroker_pipe_queued_chunks", []string{"pipe", `bad\xffname`}, 2},
		{"zbroker_pipe_queued_chunks", []string{"pipe", "shallow"}, 1},
		{"zbroker_pipes", nil, 4},
		{"zbroker_pipes_unlisted", nil, 0},
		{"zbroker_pipes_queued_chunks", nil, 8},
		{"zbroker_pipes_held_writes", nil, 1},
		{"zbroker_pipe_chunks_written_total", nil, 10},
		{"zbroker_pipe_chunks_read_total", nil, 2},
		{"zbroker_pipe_chunks_returned_total", nil, 0},
		{"zbroker_mdp_service_workers", []string{"service", "echo"}, 1},
		{"zbroker_mdp_service_idle_workers", []string{"service", "echo"}, 0},
		{"zbroker_mdp_service_queued_requests", []string{"service", "echo"}, 1},
		{"zbroker_mdp_service_inflight_requests", []string{"service", "echo"}, 1},
		{"zbroker_mdp_workers", nil, 1},
		{"zbroker_mdp_queued_requests", nil, 1},
		{"zbroker_mdp_inflight_requests", nil, 1},
		{"zbroker_mdp_requests_total", nil, 2},
		{"zbroker_mdp_failures_total", []string{"code", "503"}, 1},
		{"zbroker_mdp_failures_total", []string{"code", "400"}, 1},
		{"zbroker_clone_keys", nil, 2},
		{"zbroker_clone_sequence", nil, 3},
		{"zbroker_clone_subscribers", nil, 1},
		{"zbroker_clone_publishers", nil, 1},
		{"zbroker_clone_updates_total", nil, 3},
	} {
		got, ok := value(fams, c.name, c.labels...)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if f := fams["zbroker_pipe_chunks_written_total"]; f.GetType() != dto.MetricType_COUNTER {
		t.Errorf("chunks written is a %v, want a counter", f.GetType())
	}
	// The Go runtime's and the process's own metrics.
	if n, ok := value(fams, "go_goroutines"); !ok || n < 1 {
		t.Errorf("go_goroutines = %v, %v", n, ok)
	}
	if _, ok := fams["go_memstats_heap_alloc_bytes"]; !ok {
		t.Error("no go_memstats_heap_alloc_bytes")
	}
}

// Only the deepest pipes and busiest services get series of their own;
// the totals still cover every one.
func TestMetricsSeriesCap(t *testing.T) {
	b := startBroker(t)
	traffic(t, b)
	fams := scrape(t, startHTTP(t, b, HTTPOptions{Limit: 2}))
	var pipes []string
	for _, m := range fams["zbroker_pipe_queued_chunks"].GetMetric() {
		pipes = append(pipes, m.Label[0].GetValue())
	}
	// deep (3 chunks), then held and badName (2 each; held has more bytes).
	if fmt.Sprint(pipes) != "[deep held]" {
		t.Errorf("per-pipe series for %v, want the 2 deepest [deep held]", pipes)
	}
	for name, want := range map[string]float64{"zbroker_pipes_unlisted": 2, "zbroker_pipes_queued_chunks": 8, "zbroker_pipes": 4} {
		if got, _ := value(fams, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if n := len(fams["zbroker_pipe_writers"].GetMetric()); n != 2 {
		t.Errorf("%d zbroker_pipe_writers series, want 2", n)
	}
}

func TestStatsJSON(t *testing.T) {
	b := startBroker(t)
	traffic(t, b)
	base := startHTTP(t, b, HTTPOptions{})
	code, body := get(t, base+"/stats")
	if code != http.StatusOK {
		t.Fatalf("/stats: %d %s", code, body)
	}
	var r Report
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("/stats is not JSON: %v\n%s", err, body)
	}
	if !r.Healthy || r.Broker != b.Name || r.Zpipes == nil || r.Majordomo == nil || r.Clone == nil {
		t.Fatalf("report %+v", r)
	}
	z := r.Zpipes
	if z.Pipes != 4 || z.QueuedChunks != 8 || z.HeldWrites != 1 || z.ChunksWritten != 10 || z.ChunksRead != 2 {
		t.Errorf("zpipes totals %+v", z)
	}
	wantPipes := []Pipe{
		{Name: "deep", Depth: 3, Bytes: 3 * 168, Writers: 1, Reader: true},
		{Name: "held", Depth: 2, Bytes: 2 * 2068, Writers: 1, HeldWrites: 1},
		{Name: `bad\xffname`, Depth: 2, Bytes: 2 * (10 + int64(len(badName)) + 64), Writers: 1},
		{Name: "shallow", Depth: 1, Bytes: 10 + 7 + 64, Writers: 1},
	}
	if fmt.Sprint(z.PipeList) != fmt.Sprint(wantPipes) {
		t.Errorf("pipe_list\n got %+v\nwant %+v", z.PipeList, wantPipes)
	}
	if len(z.ConnList) != 2 {
		t.Fatalf("zpipes connections %+v", z.ConnList)
	}
	for _, c := range z.ConnList {
		if c.UID == nil || *c.UID != os.Geteuid() || c.PID == nil || *c.PID != os.Getpid() || c.Addr != "" {
			t.Errorf("connection from this process: %+v", c)
		}
	}
	m := r.Majordomo
	if fmt.Sprint(m.ServiceList) != fmt.Sprint([]Service{{Name: "echo", Workers: 1, Queued: 1, InFlight: 1}}) ||
		m.Requests != 2 || m.Failures["503"] != 1 || m.Failures["400"] != 1 {
		t.Errorf("majordomo %+v", m)
	}
	roles := map[string]int{}
	for _, c := range m.ConnList {
		roles[c.Role]++
	}
	if roles["worker"] != 1 || roles["client"] != 1 {
		t.Errorf("majordomo connections %+v", m.ConnList)
	}
	if k := r.Clone; k.Keys != 2 || k.Sequence != 3 || k.Subscribers != 1 || len(k.ConnList) != 2 {
		t.Errorf("clone %+v", k)
	}

	// ?limit caps the lists, not the totals.
	_, body = get(t, base+"/stats?limit=1")
	var one Report
	json.Unmarshal([]byte(body), &one)
	if len(one.Zpipes.PipeList) != 1 || one.Zpipes.Pipes != 4 || len(one.Zpipes.ConnList) != 1 || one.Limit != 1 {
		t.Errorf("?limit=1: %+v", one.Zpipes)
	}
	if code, body := get(t, base+"/stats?limit=lots"); code != http.StatusBadRequest {
		t.Errorf("?limit=lots: %d %s, want 400", code, body)
	}
}

func TestHealthz(t *testing.T) {
	b := startBroker(t)
	base := startHTTP(t, b, HTTPOptions{})
	code, body := get(t, base+"/healthz")
	if code != http.StatusOK || body != "zpipes: serving\nmajordomo: serving\nclone: serving\n" {
		t.Fatalf("/healthz of a running broker: %d %q", code, body)
	}
	b.Clone.Close()
	code, body = get(t, base+"/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "clone: not serving: service stopped") ||
		!strings.Contains(body, "zpipes: serving") {
		t.Fatalf("/healthz with Clone stopped: %d %q, want 503 naming clone", code, body)
	}
	fams := scrape(t, base)
	if up, _ := value(fams, "zbroker_up", "service", "clone"); up != 0 {
		t.Errorf("zbroker_up{service=clone} = %v after Close, want 0", up)
	}
}

func TestPprofOnlyWhenAsked(t *testing.T) {
	b := startBroker(t)
	if code, _ := get(t, startHTTP(t, b, HTTPOptions{})+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without Pprof: %d, want 404", code)
	}
	code, body := get(t, startHTTP(t, b, HTTPOptions{Pprof: true})+"/debug/pprof/")
	if code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/ with Pprof: %d, want 200 listing profiles", code)
	}
}

func TestHTTPLoopbackOnly(t *testing.T) {
	b := startBroker(t)
	for _, addr := range []string{"0.0.0.0:0", ":0"} {
		h, err := ListenHTTP(addr, b, HTTPOptions{Logger: quiet})
		if err == nil {
			h.Close()
			t.Errorf("ListenHTTP(%q) bound a non-loopback address", addr)
		} else if !strings.Contains(err.Error(), "--insecure-tcp") {
			t.Errorf("ListenHTTP(%q): %v; want a hint at --insecure-tcp", addr, err)
		}
	}
	h, err := ListenHTTP("0.0.0.0:0", b, HTTPOptions{AnyAddress: true, Logger: quiet})
	if err != nil {
		t.Fatalf("with AnyAddress: %v", err)
	}
	h.Close()
}

// Many requests at once all get the right answer (they take turns).
func TestConcurrentRequests(t *testing.T) {
	b := startBroker(t)
	traffic(t, b)
	base := startHTTP(t, b, HTTPOptions{})
	errs := make(chan error, 30)
	for i := range cap(errs) {
		go func() {
			path := []string{"/stats", "/metrics", "/healthz"}[i%3]
			resp, err := http.Get(base + path)
			if err != nil {
				errs <- err
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode != http.StatusOK:
				err = fmt.Errorf("%s: %d", path, resp.StatusCode)
			case path == "/stats" && !strings.Contains(string(body), `"chunks_written": 10`),
				path == "/metrics" && !strings.Contains(string(body), "zbroker_pipe_chunks_written_total 10"):
				err = fmt.Errorf("%s lacks the 10 chunks written:\n%s", path, body)
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

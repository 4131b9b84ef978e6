package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/interop"
	"github.com/zbroker/zbroker/internal/relay"
	"github.com/zbroker/zbroker/zmtp"
	"github.com/zbroker/zbroker/zpipes"
)

// TestMain lets the test binary play the child broker, as the real
// binary does with its hidden "serve" subcommand.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		os.Exit(serve(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func testEndpoint(kind string) string {
	return fmt.Sprintf("ipc://@/zpipes/zpb-test-%s-%d", kind, rand.Uint64())
}

type inProc struct {
	ep   string
	stop func()
}

func (p inProc) Endpoint() string { return p.ep }
func (p inProc) PID() int         { return 0 }
func (p inProc) Stop()            { p.stop() }

func inProcTarget(kind string) target {
	return target{Name: kind, Start: func(string) (instance, error) {
		ep := testEndpoint(kind)
		if kind == "relay" {
			r, err := relay.Start(ep)
			if err != nil {
				return nil, err
			}
			return inProc{ep, r.Close}, nil
		}
		s, err := zpipes.Start(zpipes.Options{Endpoint: ep})
		if err != nil {
			return nil, err
		}
		return inProc{ep, func() { s.Close() }}, nil
	}}
}

func tinyConfig(t *testing.T, extra ...string) *config {
	t.Helper()
	args := append([]string{"--duration", "200ms", "--warmup", "50ms", "--sizes", "64,20KiB",
		"--fanin-writers", "3", "--many-pipes", "4", "--window", "50"}, extra...)
	cfg, code := parseFlags(args, io.Discard)
	if cfg == nil {
		t.Fatalf("parseFlags(%q) = %d", args, code)
	}
	return cfg
}

func checkSane(t *testing.T, rep *report, want int) {
	t.Helper()
	if !rep.OK {
		t.Errorf("report not OK")
	}
	if len(rep.Results) != want {
		t.Fatalf("%d results, want %d", len(rep.Results), want)
	}
	for _, r := range rep.Results {
		if len(r.Errors) > 0 {
			t.Errorf("%s %s: %q", r.Server, r.Case, r.Errors)
		}
		if r.Chunks <= 0 || r.ChunksPerSec <= 0 || r.MBPerSec <= 0 {
			t.Errorf("%s %s: no throughput: %+v", r.Server, r.Case, r)
		}
		if r.LatencySamples == 0 || r.P50us <= 0 || r.P99us < r.P50us || r.MaxUs < r.P99us {
			t.Errorf("%s %s: bad latency p50 %v p99 %v max %v (%d samples)", r.Server, r.Case, r.P50us, r.P99us, r.MaxUs, r.LatencySamples)
		}
		if r.Read != r.Written || r.Read < r.Chunks {
			t.Errorf("%s %s: written %d, read %d, in window %d", r.Server, r.Case, r.Written, r.Read, r.Chunks)
		}
		if r.Server != "relay" && r.Server != libzmqRelay && r.VsRelay == nil {
			t.Errorf("%s %s: no ratio to the relay", r.Server, r.Case)
		}
	}
}

func TestBenchInProcess(t *testing.T) {
	cfg := tinyConfig(t)
	var progress bytes.Buffer
	rep, err := bench(context.Background(), cfg, []target{inProcTarget("relay"), inProcTarget("zpipes")}, &progress)
	if err != nil {
		t.Fatal(err)
	}
	// 2 sizes + fanin + pipes + latency, each against both.
	checkSane(t, rep, 10)
	if !strings.Contains(progress.String(), "[10/10] zpipes latency 64B 1w×1p win1") {
		t.Errorf("progress lacks the last case:\n%s", progress.String())
	}
	var table bytes.Buffer
	printTable(&table, rep)
	if len(rep.Targets) != 3 { // 64 B rate, fanin and pipes scaling, latency; no 64 KiB case
		t.Errorf("targets: %+v", rep.Targets)
	}
	for _, want := range []string{"chunks/s", "zpipes/relay", "fanin", "3w×1p", "1w×4p", "20KiB", "targets (issue #3", "4 pipes × (1 writer, 1 reader)"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	t.Logf("\n%s", table.String())
}

// TestCommandJSON runs the command line against external endpoints and
// reads its JSON back.
func TestCommandJSON(t *testing.T) {
	z, err := zpipes.Start(zpipes.Options{Endpoint: testEndpoint("z")})
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	r, err := relay.Start(testEndpoint("r"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var stdout, stderr bytes.Buffer
	code := run([]string{"--json", "--duration", "200ms", "--warmup", "20ms", "--sizes", "10,1MiB", "--cases", "sweep,latency",
		"--endpoint", z.Endpoint(), "--relay-endpoint", r.Endpoint(), "--no-libzmq-relay"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	var rep map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	for _, k := range []string{"command", "machine", "duration_s", "results", "ok"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	results := rep["results"].([]any)
	if len(results) != 6 {
		t.Fatalf("%d results, want 6", len(results))
	}
	for _, x := range results {
		res := x.(map[string]any)
		for _, k := range []string{"case", "group", "size", "writers", "pipes", "window", "server", "chunks", "chunks_per_sec", "mb_per_sec", "p50_us", "p99_us", "written", "read"} {
			if _, ok := res[k]; !ok {
				t.Errorf("result lacks %q: %v", k, res)
			}
		}
		if res["chunks"].(float64) <= 0 {
			t.Errorf("no chunks: %v", res)
		}
		if _, ok := res["cpu_s"]; ok {
			t.Errorf("CPU time reported for an external broker: %v", res)
		}
		if res["server"] == "external" {
			if _, ok := res["vs_relay"].(map[string]any)["chunks_per_sec"]; !ok {
				t.Errorf("no ratio: %v", res)
			}
		}
		if res["size"].(float64) == 1<<20 && res["window"].(float64) != 16 {
			t.Errorf("1MiB window not capped to 16: %v", res)
		}
		if res["size"].(float64) == 10 && res["p50_us"].(float64) <= 0 {
			t.Errorf("10-byte chunks carry a time: %v", res)
		}
	}
}

// TestChildProcesses runs one case through the real child mechanism (the
// test binary re-executed as "serve"), which also measures CPU and RSS.
func TestChildProcesses(t *testing.T) {
	cfg := tinyConfig(t, "--sizes", "4KiB", "--cases", "sweep")
	rep, err := bench(context.Background(), cfg, []target{childTarget("relay"), childTarget("zpipes")}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	checkSane(t, rep, 2)
	for _, r := range rep.Results {
		if r.CPUSeconds == nil || *r.CPUSeconds <= 0 || r.PeakRSS == nil || *r.PeakRSS < 1<<20 {
			t.Errorf("%s: no broker CPU or RSS: %+v", r.Server, r)
		}
	}
	if v := rep.Results[1].VsRelay; v == nil || v.CPUusPerChunk == nil || v.PeakRSS == nil {
		t.Errorf("no CPU/RSS ratios: %+v", v)
	}
}

// TestSmallChunks: no sequence below 16 bytes, no time below 8.
func TestSmallChunks(t *testing.T) {
	cfg := tinyConfig(t, "--sizes", "1,2,9", "--cases", "sweep", "--no-relay")
	rep, err := bench(context.Background(), cfg, []target{inProcTarget("zpipes")}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if len(r.Errors) > 0 || r.Chunks == 0 || r.Read != r.Written {
			t.Errorf("%s: %+v", r.Case, r)
		}
		if (r.LatencySamples > 0) != (r.Size >= 8) {
			t.Errorf("%s: %d latency samples", r.Case, r.LatencySamples)
		}
	}
}

// lifoBroker answers like a broker but serves each pipe last in, first
// out, and answers READs of one pipe with chunks 1 byte too long: the
// bench must notice both.
func lifoBroker(t *testing.T, badSize bool) string {
	sock, err := zmtp.Listen(testEndpoint("lifo"), zmtp.Options{SocketType: "ROUTER"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	go func() {
		stacks := map[string][][]byte{}
		waiting := map[string][]*zmtp.Conn{}
		for batch := range sock.Events() {
			for _, ev := range batch.Events {
				if ev.Type != zmtp.Message {
					continue
				}
				f, name := ev.Frames, string(ev.Frames[1])
				switch string(f[0]) {
				case "WRITE":
					chunk := f[2]
					if badSize {
						chunk = append(chunk, 0)
					}
					ev.Conn.Send([][]byte{[]byte("OK")})
					if w := waiting[name]; len(w) > 0 {
						w[0].Send([][]byte{chunk})
						waiting[name] = w[1:]
					} else {
						stacks[name] = append(stacks[name], chunk)
					}
				case "READ":
					if s := stacks[name]; len(s) > 0 {
						ev.Conn.Send([][]byte{s[len(s)-1]})
						stacks[name] = s[:len(s)-1]
					} else {
						waiting[name] = append(waiting[name], ev.Conn)
					}
				default:
					ev.Conn.Send([][]byte{[]byte("OK")})
				}
			}
			batch.Release()
		}
	}()
	return sock.Endpoint()
}

func TestValidationFails(t *testing.T) {
	for _, tc := range []struct {
		name    string
		badSize bool
		want    string
	}{{"reordered", false, "sequence went from"}, {"resized", true, "chunk of 65 bytes, want 64"}} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run([]string{"--duration", "200ms", "--warmup", "20ms", "--sizes", "64", "--cases", "sweep", "--window", "20",
				"--endpoint", lifoBroker(t, tc.badSize)}, &stdout, &stderr)
			if code != 1 || !strings.Contains(stderr.String(), tc.want) || !strings.Contains(stdout.String(), "ERRORS") {
				t.Errorf("exit %d, want 1 and %q\nstdout:\n%s\nstderr:\n%s", code, tc.want, stdout.String(), stderr.String())
			}
		})
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--sizes", "64,lots"}, {"--sizes", "0"}, {"--cases", "sweep,nope"}, {"--window", "0"},
		{"--duration", "0s"}, {"extra"}, {"--cases", ""},
	} {
		if cfg, code := parseFlags(args, io.Discard); cfg != nil || code != 2 {
			t.Errorf("%q accepted", args)
		}
	}
	cfg := tinyConfig(t, "--sizes", "64,4KiB,64KiB,1MiB", "--window", "1000", "--cases", "sweep,latency")
	var got []string
	for _, c := range cfg.cases() {
		got = append(got, c.label())
	}
	want := "[sweep 64B 1w×1p win1000 sweep 4KiB 1w×1p win1000 sweep 64KiB 1w×1p win256 sweep 1MiB 1w×1p win16 latency 64B 1w×1p win1]"
	if fmt.Sprint(got) != want {
		t.Errorf("cases %v\nwant  %v", got, want)
	}
}

func TestHist(t *testing.T) {
	var h hist
	if h.quantile(0.5) != 0 {
		t.Error("empty histogram has a median")
	}
	for v := int64(1); v <= 100000; v++ {
		h.add(v * 1000) // 1µs .. 100ms, uniform
	}
	for _, q := range []float64{0.01, 0.5, 0.99} {
		got, want := float64(h.quantile(q)), q*1e8
		if math.Abs(got-want)/want > 0.005 {
			t.Errorf("q%v = %v, want %v ± 0.5%%", q, got, want)
		}
	}
	var small hist
	for _, v := range []int64{-5, 0, 3, 3, 7} {
		small.add(v)
	}
	if small.quantile(0.5) != 3 || small.quantile(1) != 7 || small.quantile(0) != 0 {
		t.Errorf("small: %d %d %d", small.quantile(0.5), small.quantile(1), small.quantile(0))
	}
	for _, v := range []uint64{0, 127, 128, 255, 256, 1<<40 + 12345, math.MaxUint64} {
		if i := histIndex(v); i >= histBuckets || math.Abs(float64(histValue(i))-float64(v)) > float64(v)/256+1 {
			t.Errorf("value %d -> bucket %d -> %d", v, i, histValue(i))
		}
	}
}

func TestProcStats(t *testing.T) {
	end := time.Now().Add(20 * time.Millisecond)
	for time.Now().Before(end) {
	}
	cpu, err := cpuSeconds(os.Getpid())
	if err != nil || cpu <= 0 {
		t.Errorf("cpuSeconds = %v, %v", cpu, err)
	}
	rss, err := peakRSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Errorf("peakRSS = %v, %v", rss, err)
	}
}

func TestAggregate(t *testing.T) {
	mk := func(rate, p50 float64, cpu float64, rss int64) *result {
		return &result{Chunks: int64(rate), Seconds: 1, ChunksPerSec: rate, MBPerSec: rate / 1e6, P50us: p50, P99us: 2 * p50,
			MaxUs: 3 * p50, CPUSeconds: ptr(cpu), CPUusPerChunk: ptr(cpu / rate * 1e6), PeakRSS: ptr(rss), Written: 5, Read: 5}
	}
	relays := []*result{mk(100, 10, 1, 10), mk(200, 20, 1, 30), mk(150, 15, 1, 20)}
	zs := []*result{mk(50, 20, 1, 10), mk(150, 30, 1, 60), mk(120, 15, 1, 20)}
	zs[1].Errors = []string{"boom"}
	a := aggregate(zs)
	if a.ChunksPerSec != 120 || a.P50us != 20 || a.MaxUs != 90 || *a.PeakRSS != 60 || a.Chunks != 320 || a.Seconds != 3 || a.Read != 15 {
		t.Errorf("aggregate: %+v", a)
	}
	if len(a.Errors) != 1 || a.Errors[0] != "run 2: boom" || len(a.Runs) != 3 {
		t.Errorf("errors %q, runs %v", a.Errors, a.Runs)
	}
	// pairwise ratios: 0.5, 0.75, 0.8 -> 0.75; p50: 2, 1.5, 1 -> 1.5
	v := compareRuns(zs, relays)
	if v.ChunksPerSec != 0.75 || v.P50 != 1.5 || *v.PeakRSS != 1 {
		t.Errorf("ratios: %+v", v)
	}
	if median([]float64{4, 1, 3, 2}) != 2.5 || median(nil) != 0 {
		t.Error("median")
	}
}

// TestBrokerDies: a broker that dies mid-run is reported as such.
func TestBrokerDies(t *testing.T) {
	relayChild := childTarget("relay")
	dying := target{Name: "relay", Start: func(p string) (instance, error) {
		inst, err := relayChild.Start(p)
		if err == nil {
			time.AfterFunc(150*time.Millisecond, func() { inst.(*child).cmd.Process.Kill() })
		}
		return inst, err
	}}
	cfg := tinyConfig(t, "--sizes", "64", "--cases", "sweep", "--duration", "500ms")
	rep, err := bench(context.Background(), cfg, []target{dying}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || len(rep.Results) != 1 || len(rep.Results[0].Errors) == 0 || !strings.Contains(rep.Results[0].Errors[0], "died: signal: killed") {
		t.Errorf("OK %v, results %+v", rep.OK, rep.Results)
	}
}

// TestLibzmq runs the libzmq baseline: the C relay as a child broker and
// the C load generator against it and against zpipes and the Go relay,
// with both ratios.
func TestLibzmq(t *testing.T) {
	tools, err := buildLibzmq()
	if err != nil {
		interop.Missing(t, "cannot build the libzmq relay: %v", err)
	}
	cfg := tinyConfig(t, "--cases", "sweep,latency", "--client", "libzmq")
	cfg.libzmq = tools
	rep, err := bench(context.Background(), cfg, []target{inProcTarget("relay"), libzmqRelayTarget(tools), inProcTarget("zpipes")}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	checkSane(t, rep, 9) // 64 B, 20 KiB and latency against the three
	genCPU := 0.0
	for _, r := range rep.Results {
		if (r.Server == libzmqRelay) != (r.VsLibzmq == nil) {
			t.Errorf("%s %s: ratio to the libzmq relay %+v", r.Server, r.Case, r.VsLibzmq)
		}
		if r.Server == libzmqRelay && (r.PeakRSS == nil || r.CPUSeconds == nil) {
			t.Errorf("libzmq relay %s: no CPU or RSS", r.Case)
		}
		if r.GenCPUSeconds == nil {
			t.Errorf("%s %s: no CPU time for the C load generator", r.Server, r.Case)
		} else {
			genCPU += *r.GenCPUSeconds
		}
	}
	// 10 ms ticks: a 200 ms window may show none, all nine runs not.
	if genCPU <= 0 {
		t.Errorf("the C load generator used no CPU time")
	}
	var table bytes.Buffer
	printTable(&table, rep)
	for _, want := range []string{"zpipes/libzmq-relay", "relay/libzmq-relay", "load generator: C, on libzmq", "#14 p50 latency"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	t.Logf("\n%s", table.String())
}

// TestLibzmqLoadFails: the C generator reports a broker that answers
// WRITE with an error, and the bench marks the run.
func TestLibzmqLoadFails(t *testing.T) {
	tools, err := buildLibzmq()
	if err != nil {
		interop.Missing(t, "cannot build the libzmq load generator: %v", err)
	}
	ep := testEndpoint("bad")
	sock, err := zmtp.Listen(ep, zmtp.Options{SocketType: "ROUTER", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	// READs are held, as a broker holds them on an empty pipe: answering
	// them with "OK" would race, on another connection, the ERROR reply
	// to WRITE for the first error the generator reports.
	go func() {
		for batch := range sock.Events() {
			for _, ev := range batch.Events {
				if ev.Type == zmtp.Message {
					switch string(ev.Frames[0]) {
					case "WRITE":
						ev.Conn.Send([][]byte{[]byte("ERROR"), []byte("no")})
					case "READ":
					default:
						ev.Conn.Send([][]byte{[]byte("OK")})
					}
				}
			}
			batch.Release()
		}
	}()
	res, err := runLoadC(context.Background(), tools.Load, loadConfig{Endpoint: ep, Size: 64, Writers: 1, Pipes: 1, Window: 4,
		Warmup: 10 * time.Millisecond, Duration: 50 * time.Millisecond, Prefix: "bad"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) == 0 || !strings.Contains(res.Errors[0], "ERROR no") {
		t.Fatalf("errors %q, want the ERROR reply reported", res.Errors)
	}
}

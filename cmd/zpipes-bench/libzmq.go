package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The libzmq baseline: a bare relay and a load generator written in C on
// libzmq (libzmq/*.c), compiled on first use with the system compiler and
// cached. The bench itself stays pure Go: without a compiler or libzmq's
// headers the libzmq relay is skipped with a note, and --client libzmq
// fails.

//go:embed libzmq/relay.c
var relaySource []byte

//go:embed libzmq/load.c
var loadSource []byte

// libzmqTools are the compiled C programs.
type libzmqTools struct {
	Relay, Load string
}

var libzmqBuild struct {
	once  sync.Once
	tools libzmqTools
	err   error
}

// buildLibzmq compiles the C programs once per process, into a cache
// directory keyed by their source, the compiler and its flags.
func buildLibzmq() (libzmqTools, error) {
	b := &libzmqBuild
	b.once.Do(func() { b.tools, b.err = compileLibzmq() })
	return b.tools, b.err
}

func compileLibzmq() (libzmqTools, error) {
	cc := strings.Fields(os.Getenv("CC")) // may carry flags, e.g. "gcc -m64"
	if len(cc) == 0 {
		cc = []string{"cc"}
	}
	if _, err := exec.LookPath(cc[0]); err != nil {
		return libzmqTools{}, fmt.Errorf("no C compiler (%s)", cc[0])
	}
	flags := []string{"-lzmq"}
	if out, err := exec.Command("pkg-config", "--cflags", "--libs", "libzmq").Output(); err == nil {
		flags = strings.Fields(string(out))
	}
	h := sha256.New()
	h.Write(relaySource)
	h.Write(loadSource)
	fmt.Fprintf(h, "%q %q", cc, flags)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "zpipes-bench", hex.EncodeToString(h.Sum(nil))[:16])
	tools := libzmqTools{Relay: filepath.Join(dir, "relay"), Load: filepath.Join(dir, "load")}
	if _, err := os.Stat(tools.Load); err == nil {
		return tools, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return libzmqTools{}, err
	}
	for _, p := range []struct {
		out string
		src []byte
	}{{tools.Relay, relaySource}, {tools.Load, loadSource}} {
		src := p.out + ".c"
		if err := os.WriteFile(src, p.src, 0o644); err != nil {
			return libzmqTools{}, err
		}
		// Built under a temporary name and renamed, so a concurrent
		// bench never runs a half-written binary.
		tmp := fmt.Sprintf("%s.%d.tmp", p.out, os.Getpid())
		args := append(cc[1:len(cc):len(cc)], "-O2", "-Wall", "-o", tmp, src)
		args = append(args, flags...)
		if msg, err := exec.Command(cc[0], args...).CombinedOutput(); err != nil {
			os.Remove(tmp)
			return libzmqTools{}, fmt.Errorf("%s %s: %v: %s", cc[0], strings.Join(args, " "), err, lastLine(msg))
		}
		if err := os.Rename(tmp, p.out); err != nil {
			return libzmqTools{}, err
		}
	}
	return tools, nil
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// libzmqRelayTarget runs the C relay as a child per case.
func libzmqRelayTarget(tools libzmqTools) target {
	return target{Name: libzmqRelay, Start: func(string) (instance, error) {
		ep := childEndpoint()
		return startChild(libzmqRelay, ep, tools.Relay, ep)
	}}
}

// runLoadC runs one case with the C load generator, which reports on its
// standard output (see libzmq/load.c).
func runLoadC(ctx context.Context, exe string, cfg loadConfig) (*loadResult, error) {
	cmd := exec.CommandContext(ctx, exe, cfg.Endpoint, strconv.Itoa(cfg.Size), strconv.Itoa(cfg.Writers),
		strconv.Itoa(cfg.Pipes), strconv.Itoa(cfg.Window), strconv.FormatInt(int64(cfg.Warmup), 10),
		strconv.FormatInt(int64(cfg.Duration), 10), cfg.Prefix)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if cfg.Generator != nil {
		cfg.Generator(cmd.Process.Pid)
	}
	// The generator bounds its own drain at 30 s; this bounds a hung one.
	limit := time.AfterFunc(cfg.Warmup+cfg.Duration+60*time.Second, func() { cmd.Process.Kill() })
	defer limit.Stop()
	res := &loadResult{Seconds: cfg.Duration.Seconds()}
	last, lastT := int64(0), time.Now()
	got := false
	bad := func(line string) error { return fmt.Errorf("libzmq load generator: unexpected output %q", line) }
	var perr error
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		word, rest, _ := strings.Cut(line, " ")
		var nums []int64
		if word != "error" {
			for _, f := range strings.Fields(rest) {
				n, err := strconv.ParseInt(f, 10, 64)
				if err != nil && perr == nil {
					perr = bad(line)
				}
				nums = append(nums, n)
			}
		}
		switch {
		case word == "start" && cfg.WindowStart != nil:
			cfg.WindowStart()
		case word == "end" && cfg.WindowEnd != nil:
			cfg.WindowEnd()
		case word == "progress" && len(nums) == 1:
			if cfg.Progress != nil {
				t := time.Now()
				cfg.Progress(float64(nums[0]-last) / t.Sub(lastT).Seconds())
				last, lastT = nums[0], t
			}
		case word == "error":
			res.Errors = append(res.Errors, rest)
		case word == "hist" && len(nums) == 2 && nums[0] >= 0 && nums[0] < histBuckets:
			res.Latency.counts[nums[0]] += uint64(nums[1])
			res.Latency.n += uint64(nums[1])
		case word == "max" && len(nums) == 1:
			res.Latency.max = uint64(nums[0])
		case word == "result" && len(nums) == 4:
			res.Chunks, res.Written, res.Read, res.Fillers = nums[0], nums[1], nums[2], nums[3]
			got = true
		case word == "start" || word == "end":
		default:
			if perr == nil {
				perr = bad(line)
			}
		}
	}
	werr := cmd.Wait()
	switch {
	case perr != nil:
		return nil, perr
	case !got:
		return nil, fmt.Errorf("libzmq load generator: %v, no result", werr)
	case werr != nil && len(res.Errors) == 0:
		return nil, fmt.Errorf("libzmq load generator: %v", werr)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if res.Chunks == 0 && len(res.Errors) == 0 {
		res.Errors = append(res.Errors, "no chunk was read in the measured window")
	}
	return res, nil
}

package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/units"
	"github.com/zbroker/zbroker/zpipes"
)

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitLog waits until the log has a line containing every part.
func waitLog(t *testing.T, out *syncBuffer, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, line := range strings.Split(out.String(), "\n") {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q:\n%s", parts, out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The command line beats ZBROKER_* variables, which beat the file; the
// file names the broker, and takes bare booleans and comments.
func TestSettingsPrecedence(t *testing.T) {
	name := uniqueName("prec")
	cfg := filepath.Join(t.TempDir(), "zbroker.conf")
	writeFile(t, cfg, `# a comment line
name `+name+`
pipe-limit 1MiB      # file only... overridden by the environment
total-limit 2GiB     # file only
pending-limit 7KiB
no-clone
log-format json
`)
	t.Setenv("ZBROKER_PIPE_LIMIT", "2MiB")
	t.Setenv("ZBROKER_PENDING_LIMIT", "8KiB")
	t.Setenv("GOMEMLIMIT", "")
	out, done := startRun(t, "--config", cfg, "--pending-limit", "9KiB")
	ready := waitLog(t, out, `"msg":"zbroker ready"`)
	// The runtime's memory limit follows the total and receive limits.
	memLimit := `"memory_limit":"` + units.FormatSize(2<<30+16<<20+memoryHeadroom) + `"`
	for _, want := range []string{`"name":"` + name + `"`, `"pipe_limit":"2MiB"`, `"total_limit":"2GiB"`, `"pending_limit":"9KiB"`, memLimit} {
		if !strings.Contains(ready, want) {
			t.Errorf("ready line lacks %s:\n%s", want, ready)
		}
	}
	if strings.Contains(ready, "clone_") {
		t.Errorf("bare \"no-clone\" in the file did not apply:\n%s", ready)
	}
	// The name from the file is the one served.
	c, err := zpipes.Dial(context.Background(), name)
	if err != nil {
		t.Fatalf("broker named in the file: %v", err)
	}
	c.Disconnect()
	stopRun(t, out, done)
}

// -b on the command line beats the name in the environment and the file.
func TestBrokerFlagBeatsNameSetting(t *testing.T) {
	name := uniqueName("bflag")
	cfg := filepath.Join(t.TempDir(), "zbroker.conf")
	writeFile(t, cfg, "name "+uniqueName("file")+"\n")
	t.Setenv("ZBROKER_NAME", uniqueName("env"))
	out, done := startRun(t, "--config", cfg, "-b", name)
	if ready := waitLog(t, out, "zbroker ready"); !strings.Contains(ready, "name="+name) {
		t.Errorf("ready line does not name the -b broker %s:\n%s", name, ready)
	}
	stopRun(t, out, done)
}

// The example file that make install ships is valid and applies.
func TestExampleConfigFile(t *testing.T) {
	name := uniqueName("example")
	out, done := startRun(t, "--config", "../../dist/zbroker.conf", "-b", name)
	if ready := waitLog(t, out, "zbroker ready"); !strings.Contains(ready, "name="+name) || !strings.Contains(ready, "pipe_limit=64MiB") {
		t.Errorf("ready line:\n%s", ready)
	}
	stopRun(t, out, done)
}

// ZBROKER_CONFIG names the file, which names the broker.
func TestConfigFileFromEnvironment(t *testing.T) {
	name := uniqueName("envcfg")
	cfg := filepath.Join(t.TempDir(), "zbroker.conf")
	writeFile(t, cfg, "name "+name+"\nno-majordomo\n")
	t.Setenv("ZBROKER_CONFIG", cfg)
	t.Setenv("ZBROKER_NO_CLONE", "true")
	out, done := startRun(t)
	ready := waitLog(t, out, "zbroker ready")
	if !strings.Contains(ready, "name="+name) || strings.Contains(ready, "majordomo=") || strings.Contains(ready, "clone_") {
		t.Errorf("ready line does not follow ZBROKER_CONFIG and ZBROKER_NO_CLONE:\n%s", ready)
	}
	stopRun(t, out, done)
}

func TestSettingsErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		file, env, want string
		args            []string
	}{
		{file: "no-such-setting 1\n", want: "no-such-setting"},
		{file: "pipe-limit lots\n", want: "pipe-limit"},
		{file: "config other.conf\n", want: "cannot name another"},
		{env: "lots", want: "ZBROKER_PIPE_LIMIT"},
		{file: "log-level loud\n", want: "--log-level"},
		{args: []string{"--log-format", "xml"}, want: "--log-format"},
		{args: []string{"--config", filepath.Join(dir, "missing.conf")}, want: "missing.conf"},
	} {
		args := tc.args
		if tc.file != "" {
			cfg := filepath.Join(dir, "z.conf")
			writeFile(t, cfg, tc.file)
			args = append(args, "--config", cfg)
		}
		t.Setenv("ZBROKER_PIPE_LIMIT", tc.env)
		var stdout, stderr bytes.Buffer
		code := run(append(args, uniqueName("err")), &stdout, &stderr)
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("%q, file %q, env %q: exit %d, stderr %q; want exit 2 and one line naming %q",
				args, tc.file, tc.env, code, stderr.String(), tc.want)
		}
	}
}

// SIGHUP applies the new limits and log level, logs what changed, warns
// about what needs a restart, and keeps the broker running.
func TestSIGHUPReloads(t *testing.T) {
	name := uniqueName("hup")
	cfg := filepath.Join(t.TempDir(), "zbroker.conf")
	writeFile(t, cfg, "pipe-limit 64KiB\nmax-chunk 1MiB\n")
	out, done := startRun(t, "--config", cfg, "--no-clone", name)
	waitLog(t, out, "zbroker ready", "pipe_limit=64KiB")

	// Fill the pipe past 64KiB: the last WRITEs are held back until the
	// reload raises the limit (nobody reads the pipe).
	c, err := zpipes.Dial(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Open(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	var pending []*zpipes.Pending
	for range 8 {
		pending = append(pending, c.WriteAsync("p", make([]byte, 16<<10)))
	}
	if strings.Contains(out.String(), "peer connected") {
		t.Fatalf("debug line logged at level info:\n%s", out.String())
	}

	writeFile(t, cfg, "pipe-limit 1MiB\nmax-chunk 2MiB\nlog-level debug\nmdp-queue-limit 5\n")
	syscall.Kill(syscall.Getpid(), syscall.SIGHUP)
	line := waitLog(t, out, "settings reloaded")
	for _, want := range []string{`pipe-limit="64KiB -> 1MiB"`, `log-level="INFO -> DEBUG"`, `mdp-queue-limit="10000 -> 5"`} {
		if !strings.Contains(line, want) {
			t.Errorf("reload line lacks %s:\n%s", want, line)
		}
	}
	waitLog(t, out, "applies only at start", "setting=max-chunk")
	for i, p := range pending {
		if _, err := p.Wait(ctx); err != nil {
			t.Fatalf("WRITE %d after raising the limit: %v", i, err)
		}
	}
	c2, err := zpipes.Dial(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	c2.Disconnect()
	waitLog(t, out, "peer connected") // the debug level applies

	// A bad value is refused and the running one kept.
	writeFile(t, cfg, "pipe-limit lots\n")
	syscall.Kill(syscall.Getpid(), syscall.SIGHUP)
	waitLog(t, out, "bad setting on reload", "setting=pipe-limit")
	writeFile(t, cfg, "no-such-setting 1\n")
	syscall.Kill(syscall.Getpid(), syscall.SIGHUP)
	waitLog(t, out, "reload failed", "no-such-setting")
	stopRun(t, out, done)
}

// The ready line comes once everything is bound, and READY=1 goes to
// $NOTIFY_SOCKET.
func TestReadyNotifiesServiceManager(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	name := uniqueName("ready")
	out, done := startRun(t, name)
	l.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, err := l.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("notify socket got %q, %v; want READY=1", buf[:n], err)
	}
	// By then every endpoint answers.
	if c, err := zpipes.DialEndpoint(context.Background(), zpipes.Endpoint(name)); err != nil {
		t.Fatalf("zpipes not bound at READY=1: %v", err)
	} else {
		c.Disconnect()
	}
	if strings.Count(out.String(), "zbroker ready") != 1 {
		t.Fatalf("want exactly one ready line:\n%s", out.String())
	}
	stopRun(t, out, done)
	n, err = l.Read(buf)
	if err != nil || string(buf[:n]) != "STOPPING=1" {
		t.Fatalf("notify socket got %q, %v after SIGTERM; want STOPPING=1", buf[:n], err)
	}
}

// "zbroker help" prints the usage; it does not start a broker named help.
func TestHelpVersionAndUsageLine(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "usage: zbroker") || stderr.Len() != 0 {
			t.Errorf("%q: exit %d, stdout %.40q, stderr %q", args, code, stdout.String(), stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--version"}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "zbroker ") {
		t.Errorf("--version: exit %d, stdout %q", code, stdout.String())
	}
	stdout.Reset()
	stderr.Reset()
	code := run([]string{"--pipe-limit", "lots"}, &stdout, &stderr)
	if code != 2 || strings.Count(stderr.String(), "\n") != 1 || !strings.HasSuffix(stderr.String(), "(run 'zbroker --help' for usage)\n") {
		t.Errorf("usage error: exit %d, stderr %q", code, stderr.String())
	}
}

// Package dist_test checks what "make install" puts on a machine: the four
// tools, their man pages and the systemd unit, and runs the unit under
// systemd where systemd runs.
package dist_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/testsupport"
)

var tools = []string{"zbroker", "zpipe", "mdp", "zclone"}

func TestMakeInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed: make install not tested")
	}
	prefix := t.TempDir()
	cmd := exec.Command("make", "-C", "..", "install", "PREFIX="+prefix)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, tool := range tools {
		bin := filepath.Join(prefix, "bin", tool)
		out, err := exec.Command(bin, "--version").Output()
		if err != nil || !strings.HasPrefix(string(out), tool+" ") {
			t.Errorf("%s --version: %q, %v", bin, out, err)
		}
		page, err := os.ReadFile(filepath.Join(prefix, "share/man/man1", tool+".1"))
		if err != nil || !strings.Contains(string(page), ".SH NAME\n"+tool+" \\- ") || !strings.Contains(string(page), "usage: "+tool) {
			t.Errorf("man page of %s: %v\n%.300s", tool, err, page)
		}
	}
	// What users install, NATS server included, stays small to copy around.
	if fi, err := os.Stat(filepath.Join(prefix, "bin", "zbroker")); err != nil || fi.Size() > 30_000_000 {
		t.Errorf("installed zbroker: %v, want at most 30 MB (size %d)", err, fi.Size())
	}
	if _, err := os.Stat(filepath.Join(prefix, "bin", "zpipes-bench")); err == nil {
		t.Error("the benchmark was installed")
	}
	if _, err := os.Stat(filepath.Join(prefix, "share/doc/zbroker/zbroker.conf.example")); err != nil {
		t.Error(err)
	}
	unit := filepath.Join(prefix, "lib/systemd/system/zbroker.service")
	text, err := os.ReadFile(unit)
	if err != nil || !strings.Contains(string(text), "ExecStart="+prefix+"/bin/zbroker\n") {
		t.Fatalf("unit: %v\n%s", err, text)
	}
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Log("systemd-analyze is not installed: unit not verified")
		return
	}
	if out, err := exec.Command("systemd-analyze", "verify", "--man=no", unit).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// serviceSettings reads the [Service] settings of the unit that
// systemd-run can take as properties.
func serviceSettings(t *testing.T) (props []string, execStart string) {
	f, err := os.Open("zbroker.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	inService := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "["):
			inService = line == "[Service]"
		case !inService || line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "ExecStart="):
			execStart = strings.TrimPrefix(line, "ExecStart=")
		default:
			props = append(props, line)
		}
	}
	return props, execStart
}

func TestUnitSettings(t *testing.T) {
	props, execStart := serviceSettings(t)
	for _, want := range []string{"Type=notify", "NotifyAccess=main", "ExecReload=/bin/kill -HUP $MAINPID"} {
		found := false
		for _, p := range props {
			found = found || p == want
		}
		if !found {
			t.Errorf("unit lacks %s: %q", want, props)
		}
	}
	if execStart != "@BINDIR@/zbroker" {
		t.Errorf("ExecStart=%s", execStart)
	}
}

// The unit's settings under the running systemd: start returns once the
// broker sent READY=1, reload (SIGHUP) keeps it running, stop ends it.
func TestUnitUnderSystemd(t *testing.T) {
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		t.Skip("systemd is not running here (no /run/systemd/system): the unit is checked by TestMakeInstall's systemd-analyze verify only")
	}
	if _, err := exec.LookPath("systemd-run"); err != nil {
		t.Skip("systemd-run is not installed: the unit is not run")
	}
	bin := testsupport.BuildBroker(t)
	name := fmt.Sprintf("zbroker-test-%d", time.Now().UnixNano())
	props, _ := serviceSettings(t)
	args := []string{"--unit", name, "--setenv", "ZBROKER_NAME=" + name}
	for _, p := range props {
		if strings.HasPrefix(p, "EnvironmentFile=") || strings.HasPrefix(p, "Restart") {
			continue // no settings file here; no restarts of a test unit
		}
		args = append(args, "--property", p)
	}
	args = append(args, bin)
	if out, err := exec.Command("systemd-run", args...).CombinedOutput(); err != nil {
		t.Fatalf("systemd-run %q: %v\n%s", args, err, out)
	}
	t.Cleanup(func() { exec.Command("systemctl", "stop", name).Run() })
	active := func() string {
		out, _ := exec.Command("systemctl", "is-active", name).Output()
		return strings.TrimSpace(string(out))
	}
	if s := active(); s != "active" {
		t.Fatalf("after start (READY=1): %s", s)
	}
	if out, err := exec.Command("systemctl", "reload", name).CombinedOutput(); err != nil {
		t.Fatalf("systemctl reload: %v\n%s", err, out)
	}
	if s := active(); s != "active" {
		t.Fatalf("after reload: %s", s)
	}
	if out, err := exec.Command("systemctl", "stop", name).CombinedOutput(); err != nil {
		t.Fatalf("systemctl stop: %v\n%s", err, out)
	}
}

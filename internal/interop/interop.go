// Package interop finds the real libzmq peers the test suites run against
// (Debian's python3-zmq, and a C compiler with libzmq3-dev). Without them
// a test is skipped, except under CI=true or ZBROKER_INTEROP=require,
// where it fails: CI must never pass without running them.
package interop

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// InstallHint says how to get what the interop tests need.
const InstallHint = "apt-get install python3-zmq libzmq3-dev pkg-config gcc (or run scripts/deps.sh)"

// Required reports whether missing prerequisites fail tests.
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("ZBROKER_INTEROP") == "require"
}

// Missing skips t, or fails it when interop tests are required.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("interop test cannot run: %s; %s (required because CI=true or ZBROKER_INTEROP=require)", msg, InstallHint)
	}
	t.Skipf("interop test skipped: %s; %s (set ZBROKER_INTEROP=require to make this a failure)", msg, InstallHint)
}

var python struct {
	once sync.Once
	path string
	why  string
}

// Python returns a python interpreter that can import zmq: ZBROKER_PYTHON
// if set, else Debian's /usr/bin/python3 first (a pyenv or venv python3
// earlier on PATH usually lacks the module), else python3 on PATH.
func Python(t testing.TB) string {
	t.Helper()
	python.once.Do(func() {
		var candidates []string
		if p := os.Getenv("ZBROKER_PYTHON"); p != "" {
			candidates = append(candidates, p)
		}
		candidates = append(candidates, "/usr/bin/python3")
		if p, err := exec.LookPath("python3"); err == nil {
			candidates = append(candidates, p)
		}
		var tried []string
		for _, c := range candidates {
			out, err := exec.Command(c, "-c", "import zmq").CombinedOutput()
			if err == nil {
				python.path = c
				return
			}
			tried = append(tried, fmt.Sprintf("%s (%v: %s)", c, err, lastLine(out)))
		}
		python.why = "no python3 with the zmq module; tried " + strings.Join(tried, ", ")
	})
	if python.path == "" {
		Missing(t, "%s", python.why)
	}
	return python.path
}

// CompileC builds the C source src against libzmq into the executable out.
// Missing tools skip (or fail, when required); a compile error with the
// tools present always fails.
func CompileC(t testing.TB, src, out string) {
	t.Helper()
	cc := strings.Fields(os.Getenv("CC")) // may carry flags, e.g. "gcc -m64"
	if len(cc) == 0 {
		cc = []string{"cc"}
	}
	if _, err := exec.LookPath(cc[0]); err != nil {
		Missing(t, "no C compiler (%s): %v", cc[0], err)
	}
	flags, err := exec.Command("pkg-config", "--cflags", "--libs", "libzmq").Output()
	if err != nil {
		Missing(t, "pkg-config --cflags --libs libzmq failed: %v", err)
	}
	args := append(cc[1:len(cc):len(cc)], "-O1", "-Wall", "-o", out, src)
	args = append(args, strings.Fields(string(flags))...)
	if msg, err := exec.Command(cc[0], args...).CombinedOutput(); err != nil {
		if bytes.Contains(msg, []byte("zmq.h")) {
			Missing(t, "cannot compile against libzmq: %s", msg)
		}
		t.Fatalf("compiling %s: %v\n%s", src, err, msg)
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

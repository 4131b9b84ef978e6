// Package testsupport holds what several packages' tests need alike: a
// buffer safe to share between a logger or process and the test, the
// broker binary for end-to-end tests, and a CURVE server with one
// admitted client.
package testsupport

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/zbroker/zbroker/internal/curvekey"
	"github.com/zbroker/zbroker/zmtp"
)

// Buffer collects output written by another goroutine (a logger, a
// process's stderr) while the test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// BuildBroker builds cmd/zbroker into a directory removed when t ends.
// The go build cache makes every build after the first a link only.
func BuildBroker(t testing.TB) string {
	t.Helper()
	goTool, err := exec.LookPath("go") // go test puts its GOROOT/bin first on PATH
	if err != nil {
		t.Fatalf("no go command to build the broker: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "zbroker")
	if out, err := exec.Command(goTool, "build", "-o", bin, "github.com/zbroker/zbroker/cmd/zbroker").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/zbroker: %v\n%s", err, out)
	}
	return bin
}

// Curve is a server's CURVE settings admitting one client, whose secret
// key is in KeyFile (as a command line's --curve-key-file reads it).
type Curve struct {
	Server    *zmtp.CurveOptions
	ServerKey string // the server's public key, Z85 (--curve-server-key)
	KeyFile   string
}

// NewCurve makes fresh server and client key pairs.
func NewCurve(t testing.TB) Curve {
	t.Helper()
	serverPub, serverSec, err := zmtp.NewCurveKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	clientPub, clientSec, err := zmtp.NewCurveKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "client.key")
	if err := curvekey.WriteSecret(keyFile, clientSec); err != nil {
		t.Fatal(err)
	}
	return Curve{
		Server:    &zmtp.CurveOptions{PublicKey: serverPub, SecretKey: serverSec, Authorize: curvekey.Admit([]zmtp.CurveKey{clientPub})},
		ServerKey: serverPub.String(),
		KeyFile:   keyFile,
	}
}

// Flags are the client flags that use the pair.
func (c Curve) Flags() []string {
	return []string{"--curve-server-key", c.ServerKey, "--curve-key-file", c.KeyFile}
}

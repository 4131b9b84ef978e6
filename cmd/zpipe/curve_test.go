package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/zbroker/zbroker/internal/testsupport"
	"github.com/zbroker/zbroker/zpipes"
)

// zpipe talks CURVE to a broker's tcp endpoint with --curve-server-key
// and --curve-key-file; without them it is refused, and says why.
func TestCurveFlags(t *testing.T) {
	curve := testsupport.NewCurve(t)
	srv, err := zpipes.Start(zpipes.Options{Name: "curve-cli", Endpoint: "tcp://127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Curve:  curve.Server})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	flags := append([]string{"--endpoint", srv.Endpoint()}, curve.Flags()...)
	mustRun(t, []byte("one\ntwo\n"), append(flags, "write", "--lines", "p")...)
	if out := mustRun(t, nil, append(flags, "read", "--lines", "p")...); out != "one\ntwo\n" {
		t.Fatalf("read %q", out)
	}
	if code, _, errOut := zpipe(t, nil, "--endpoint", srv.Endpoint(), "ping"); code != 1 || !strings.Contains(errOut, "mechanism mismatch") {
		t.Fatalf("without CURVE: exit %d, %q", code, errOut)
	}
	// A new key pair (no --curve-key-file) is not on the list.
	if code, _, errOut := zpipe(t, nil, "--endpoint", srv.Endpoint(), "--curve-server-key", curve.ServerKey, "ping"); code != 1 || !strings.Contains(errOut, "400") {
		t.Fatalf("unlisted key: exit %d, %q", code, errOut)
	}
	if code, _, errOut := zpipe(t, nil, "--curve-key-file", curve.KeyFile, "ping"); code != 2 || !strings.Contains(errOut, "needs --curve-server-key") {
		t.Fatalf("key file alone: exit %d, %q", code, errOut)
	}
	if code, _, errOut := zpipe(t, nil, "--curve-server-key", "short", "ping"); code != 2 || !strings.Contains(errOut, "40 Z85") {
		t.Fatalf("bad server key: exit %d, %q", code, errOut)
	}
}

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/interop"
	"github.com/zbroker/zbroker/zmtp"
	"github.com/zbroker/zbroker/zpipes"
)

// TestCurveAgainstLibzmqRelay: the CURVE benchmark of BENCHMARKS.md in
// miniature: zpipes on CURVE against the C relay with a secret key
// (libzmq's CURVE, the baseline), both driven with --curve-server-key.
func TestCurveAgainstLibzmqRelay(t *testing.T) {
	tools, err := buildLibzmq()
	if err != nil {
		interop.Missing(t, "cannot build the libzmq relay: %v", err)
	}
	pub, sec, _ := zmtp.NewCurveKeyPair()
	l, err := net.Listen("tcp", "127.0.0.1:0") // a free port for the relay
	if err != nil {
		t.Fatal(err)
	}
	relayEP := "tcp://" + l.Addr().String()
	l.Close()
	relay := exec.Command(tools.Relay, relayEP, sec.String())
	stdin, _ := relay.StdinPipe() // the relay runs until this closes
	out, _ := relay.StdoutPipe()
	if err := relay.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		relay.Wait()
	}()
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("relay: %q %v", line, err)
	}
	z, err := zpipes.Start(zpipes.Options{Endpoint: "tcp://127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Curve: &zmtp.CurveOptions{PublicKey: pub, SecretKey: sec}})
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	var stdout, stderr bytes.Buffer
	args := []string{"--json", "--duration", "1s", "--warmup", "100ms", "--sizes", "64", "--cases", "sweep",
		"--no-libzmq-relay", "--endpoint", z.Endpoint(), "--relay-endpoint", relayEP, "--curve-server-key", pub.String()}
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	var rep struct {
		Results []struct {
			Server string  `json:"server"`
			Chunks float64 `json:"chunks"`
		} `json:"results"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 {
		t.Fatalf("%d results, want 2:\n%s", len(rep.Results), stdout.String())
	}
	for _, r := range rep.Results {
		if r.Chunks <= 0 {
			t.Errorf("%s moved no chunks", r.Server)
		}
	}
	// Without the key the CURVE endpoints refuse the load generator.
	done := make(chan int, 1)
	go func() { done <- run(args[:len(args)-2], io.Discard, io.Discard) }()
	select {
	case code := <-done:
		if code == 0 {
			t.Fatal("a NULL load generator was served by CURVE endpoints")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("zpipes-bench without the key did not give up")
	}
}

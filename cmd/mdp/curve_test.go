package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/curvekey"
	"github.com/zbroker/zbroker/majordomo"
	"github.com/zbroker/zbroker/zmtp"
)

// mdp's client and echo-worker talk CURVE to a broker's tcp endpoint.
func TestCurveFlags(t *testing.T) {
	serverPub, serverSec, _ := zmtp.NewCurveKeyPair()
	clientPub, clientSec, _ := zmtp.NewCurveKeyPair()
	keyFile := filepath.Join(t.TempDir(), "client.key")
	if err := curvekey.WriteSecret(keyFile, clientSec); err != nil {
		t.Fatal(err)
	}
	srv, _ := startBroker(t, majordomo.Options{Endpoint: "tcp://127.0.0.1:0", RequestTimeout: time.Second,
		Curve: &zmtp.CurveOptions{PublicKey: serverPub, SecretKey: serverSec, Authorize: curvekey.Admit([]zmtp.CurveKey{clientPub})}})
	flags := []string{"--endpoint", srv.Endpoint(), "--curve-server-key", serverPub.String(), "--curve-key-file", keyFile}
	startEchoWorker(t, flags...)
	waitWorkers(t, srv, 1)
	mdp(t, append(flags, "call", "echo", "secret")...).want(t, 0, "secret\n", "")
	mdp(t, "--endpoint", srv.Endpoint(), "call", "echo", "x").want(t, 1, "", "mechanism mismatch")
	mdp(t, "--curve-key-file", keyFile, "call", "echo").want(t, 2, "", "needs --curve-server-key")
}

package main

import (
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/testsupport"
	"github.com/zbroker/zbroker/majordomo"
)

// mdp's client and echo-worker talk CURVE to a broker's tcp endpoint.
func TestCurveFlags(t *testing.T) {
	curve := testsupport.NewCurve(t)
	srv, _ := startBroker(t, majordomo.Options{Endpoint: "tcp://127.0.0.1:0", RequestTimeout: time.Second, Curve: curve.Server})
	flags := append([]string{"--endpoint", srv.Endpoint()}, curve.Flags()...)
	startEchoWorker(t, flags...)
	waitWorkers(t, srv, 1)
	mdp(t, append(flags, "call", "echo", "secret")...).want(t, 0, "secret\n", "")
	mdp(t, "--endpoint", srv.Endpoint(), "call", "echo", "x").want(t, 1, "", "mechanism mismatch")
	mdp(t, "--curve-key-file", curve.KeyFile, "call", "echo").want(t, 2, "", "needs --curve-server-key")
}

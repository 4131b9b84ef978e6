package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/zbroker/zbroker/clone"
	"github.com/zbroker/zbroker/internal/testsupport"
)

// zclone talks CURVE to the three tcp endpoints of a broker.
func TestCurveFlags(t *testing.T) {
	curve := testsupport.NewCurve(t)
	// --endpoint-prefix wants three consecutive ports: try some.
	var srv *clone.Server
	var prefix string
	for try := 0; srv == nil; try++ {
		port := 20000 + rand.IntN(30000)
		ep := func(i int) string { return fmt.Sprintf("tcp://127.0.0.1:%d", port+i) }
		s, err := clone.Start(clone.Options{Name: "curve-cli", SnapshotEndpoint: ep(0), PublisherEndpoint: ep(1), CollectorEndpoint: ep(2),
			Curve: curve.Server, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil && try < 20 {
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		srv, prefix = s, ep(0)
	}
	defer srv.Close()
	zc := func(args ...string) (string, int) {
		var out bytes.Buffer
		flags := append([]string{"--endpoint-prefix", prefix}, curve.Flags()...)
		code := run(context.Background(), append(flags, args...), &out, &out)
		return out.String(), code
	}
	if out, code := zc("set", "/c/k", "encrypted"); code != 0 {
		t.Fatalf("set: %d %s", code, out)
	}
	if out, code := zc("get", "/c/k"); code != 0 || out != "encrypted\n" {
		t.Fatalf("get: %d %q", code, out)
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--endpoint-prefix", prefix, "get", "/c/k"}, &out, &out); code != 1 || !strings.Contains(out.String(), "mechanism mismatch") {
		t.Fatalf("without CURVE: %d %q", code, out.String())
	}
}

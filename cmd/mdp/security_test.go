package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/zbroker/zbroker/internal/interop"
	"github.com/zbroker/zbroker/internal/testuser"
	"github.com/zbroker/zbroker/majordomo"
)

// A process of another uid bound to the broker's name first is sent no
// request by mdp, which says why and how to trust it if intended.
func TestRefusesSquatter(t *testing.T) {
	testuser.WantSquatterRefused(t, interop.Python(t),
		func(name string) []string { return []string{majordomo.Endpoint(name)} },
		func(name string) (int, string) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"-b", name, "--retries", "0", "call", "echo", "password"}, &stdout, &stderr)
			return code, stderr.String()
		})
}

package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/zbroker/zbroker/clone"
	"github.com/zbroker/zbroker/internal/interop"
	"github.com/zbroker/zbroker/internal/testuser"
)

// A process of another uid bound to the server's names first is sent no
// update by zclone, which says why and how to trust it if intended.
func TestRefusesSquatter(t *testing.T) {
	testuser.WantSquatterRefused(t, interop.Python(t),
		func(name string) []string {
			return []string{clone.SnapshotEndpoint(name), clone.PublisherEndpoint(name), clone.CollectorEndpoint(name)}
		},
		func(name string) (int, string) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"-b", name, "--timeout", "1s", "set", "k", "password"}, &stdout, &stderr)
			return code, stderr.String()
		})
}

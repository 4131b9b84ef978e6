package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/zbroker/zbroker/internal/interop"
	"github.com/zbroker/zbroker/internal/testuser"
	"github.com/zbroker/zbroker/zpipes"
)

// A process of another uid bound to the broker's name first gets nothing
// from zpipe, which says why and how to trust it if intended.
func TestRefusesSquatter(t *testing.T) {
	testuser.WantSquatterRefused(t, interop.Python(t),
		func(name string) []string { return []string{zpipes.Endpoint(name)} },
		func(name string) (int, string) {
			var stdout, stderr bytes.Buffer
			code := run([]string{"-b", name, "write", "secrets"}, strings.NewReader("password\n"), &stdout, &stderr)
			return code, stderr.String()
		})
}

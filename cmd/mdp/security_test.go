package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/zbroker/zbroker/internal/interop"
	"github.com/zbroker/zbroker/internal/testuser"
	"github.com/zbroker/zbroker/majordomo"
)

// A process of another uid bound to the broker's name first is sent no
// request by mdp, which says why and how to trust it if intended.
func TestRefusesSquatter(t *testing.T) {
	name := fmt.Sprintf("squat-%d-%x", os.Getpid(), rand.Uint64())
	u, stop := testuser.Squat(t, interop.Python(t), majordomo.Endpoint(name))
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-b", name, "--retries", "0", "call", "echo", "password"}, &stdout, &stderr)
	uid := strconv.Itoa(u.UID)
	if code != 1 || !strings.Contains(stderr.String(), "served by uid "+uid) || !strings.Contains(stderr.String(), "--broker-uid "+uid) {
		t.Fatalf("mdp call to a squatter: exit %d, stderr %q", code, stderr.String())
	}
	if out := stop(); !strings.Contains(out, "received 0") {
		t.Fatalf("squatter got data: %q", out)
	}
}

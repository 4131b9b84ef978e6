package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/zbroker/zbroker/internal/interop"
)

// freePorts finds P such that tcp ports P, P+1 and P+2 of 127.0.0.1 are
// free at the moment.
func freePorts(t *testing.T) int {
	for range 100 {
		p := 20000 + rand.IntN(40000)
		var ls []net.Listener
		for i := range 3 {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+i))
			if err != nil {
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if len(ls) == 3 {
			return p
		}
	}
	t.Fatal("no three consecutive free ports")
	return 0
}

// The command docs/zguide.md gives for the zguide's clone agents (snapshot
// on P, updates on P+1, collector on P+2, over tcp) serves a libzmq CHP
// peer that reaches it by that arithmetic: an ephemeral update comes back
// and then expires.
func TestRunServesCloneAgentsOverTCP(t *testing.T) {
	py := interop.Python(t)
	p := freePorts(t)
	ep := func(i int) string { return fmt.Sprintf("tcp://127.0.0.1:%d", p+i) }
	out, done := startRun(t, "--no-zpipes", "--no-majordomo",
		"--clone-snapshot", ep(0), "--clone-updates", ep(1), "--clone-collector", ep(2), uniqueName("zguide"))
	res, err := exec.Command(py, "../../clone/testdata/chp_peer.py", "ttl", ep(0), ep(1), ep(2), "/eph/x").CombinedOutput()
	stopRun(t, out, done)
	if err != nil {
		t.Fatalf("chp_peer.py: %v\n%s\nbroker:\n%s", err, res, out.String())
	}
	var set, del map[string]any
	lines := strings.Split(strings.TrimSpace(string(res)), "\n")
	if len(lines) != 2 || json.Unmarshal([]byte(lines[0]), &set) != nil || json.Unmarshal([]byte(lines[1]), &del) != nil ||
		set["body"] != "ephemeral" || del["body"] != "" {
		t.Fatalf("libzmq peer over tcp saw:\n%s", res)
	}
}

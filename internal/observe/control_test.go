package observe

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/zbroker/zbroker/zmtp"
)

func startControl(t *testing.T, b *Broker) string {
	t.Helper()
	ctl, err := ListenControl("ipc://@/zbroker-test/"+rand.Text()[:10]+"/control", b, zmtp.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ctl.Close)
	return ctl.Endpoint()
}

func TestControlReportAndTable(t *testing.T) {
	b := startBroker(t)
	traffic(t, b)
	ep := startControl(t, b)
	r, err := QueryControl(testCtx(t), ep, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Healthy || r.Limit != 3 || r.Zpipes.ChunksWritten != 10 || len(r.Zpipes.PipeList) != 3 ||
		r.Majordomo.Queued != 1 || r.Clone.Sequence != 3 {
		t.Fatalf("report over the control endpoint: %+v", r)
	}
	var out bytes.Buffer
	if err := WriteTable(&out, r); err != nil {
		t.Fatal(err)
	}
	table := out.String()
	uid := fmt.Sprintf("uid %d pid %d", os.Geteuid(), os.Getpid())
	for _, want := range []string{
		"broker " + b.Name + ": healthy",
		"connections 2, pipes 4, queued 8 chunks",
		"chunks written 10, read 2, returned 0",
		"PIPE", "deep", `bad\xffname`,
		"(1 more pipes not listed)",
		"workers 1 (0 idle), queued 1, in flight 1",
		"requests 2, failures 400: 1, 503: 1",
		"echo",
		"keys 2, sequence 3, subscribers 1, publishers 1",
		"zpipes", "majordomo", "worker", "service echo", "clone", "subscriber", "publisher", uid,
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, "shallow") {
		t.Errorf("table lists the 4th pipe with limit 3:\n%s", table)
	}
	if strings.ContainsFunc(table, func(r rune) bool { return r == '\ufffd' || r < 0x20 && r != '\n' }) {
		t.Errorf("table holds raw bytes of a name:\n%q", table)
	}
}

// A REQ peer (as a libzmq script would use) gets the same answer, behind
// its delimiter; a bad request gets ERROR and changes nothing.
func TestControlProtocol(t *testing.T) {
	b := startBroker(t)
	ep := startControl(t, b)
	req, err := zmtp.Dial(testCtx(t), ep, zmtp.Options{SocketType: "REQ"})
	if err != nil {
		t.Fatal(err)
	}
	defer req.Close()
	ask := func(frames ...string) [][]byte {
		t.Helper()
		f := [][]byte{{}}
		for _, s := range frames {
			f = append(f, []byte(s))
		}
		if err := req.Send(f); err != nil {
			t.Fatal(err)
		}
		reply, err := req.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(reply) < 1 || len(reply[0]) != 0 {
			t.Fatalf("reply to a REQ peer lacks the delimiter: %q", reply)
		}
		return reply[1:]
	}
	reply := ask("STATS")
	var r Report
	if len(reply) != 2 || string(reply[0]) != "OK" || json.Unmarshal(reply[1], &r) != nil || r.Broker != b.Name || r.Limit != DefaultLimit {
		t.Fatalf("STATS: %q", reply)
	}
	for _, bad := range [][]string{{"NOPE"}, {"STATS", "-1"}, {"STATS", "x"}, {"STATS", "1", "2"}} {
		if reply := ask(bad...); len(reply) != 2 || string(reply[0]) != "ERROR" {
			t.Errorf("%q: %q, want ERROR and a reason", bad, reply)
		}
	}
	if reply := ask("STATS", "0"); len(reply) != 2 || string(reply[0]) != "OK" {
		t.Errorf("STATS 0 after bad requests: %q", reply)
	}
}

// Any request gets exactly one of the two replies.
func FuzzControlRequest(f *testing.F) {
	f.Add([]byte("STATS"), []byte("10"), 2)
	f.Add([]byte("STATS"), []byte("-0"), 2)
	f.Add([]byte("NOPE"), []byte{}, 1)
	b := &Broker{Name: "fuzz"} // no services: nothing to ask
	f.Fuzz(func(t *testing.T, first, second []byte, n int) {
		req := [][]byte{first, second, second}[:max(0, n%4)]
		reply := answer(b, req)
		if len(reply) != 2 || string(reply[0]) != replyOK && string(reply[0]) != replyError {
			t.Fatalf("answer(%q) = %q", req, reply)
		}
		if string(reply[0]) == replyOK {
			var r Report
			if err := json.Unmarshal(reply[1], &r); err != nil || r.Broker != "fuzz" {
				t.Fatalf("answer(%q): OK with %q", req, reply[1])
			}
		}
	})
}

// A stopped service makes the report unhealthy and says so in the table;
// a service not served at all is simply absent.
func TestReportUnhealthyAndPartial(t *testing.T) {
	b := startBroker(t)
	b.Majordomo = nil // not served
	b.Clone.Close()
	r, err := QueryControl(testCtx(t), startControl(t, b), 5, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Healthy || r.Majordomo != nil || r.Clone == nil || r.Clone.Serving || !r.Zpipes.Serving {
		t.Fatalf("report with Clone stopped and no Majordomo: %+v", r)
	}
	var out bytes.Buffer
	WriteTable(&out, r)
	for _, want := range []string{"UNHEALTHY", "zpipes: serving", "clone: NOT SERVING: service stopped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "majordomo") {
		t.Errorf("table shows Majordomo, which is not served:\n%s", out.String())
	}
}

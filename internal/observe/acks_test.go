package observe

import (
	"testing"

	"github.com/zbroker/zbroker/zpipes"
)

// Chunks held by acknowledging readers are counted per pipe and in all,
// and acknowledgements in a counter.
func TestMetricsUnacked(t *testing.T) {
	b := startBroker(t)
	ctx := testCtx(t)
	c, err := zpipes.DialEndpoint(ctx, b.Zpipes.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	if err := c.OpenAck(ctx, "jobs"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := c.Write(ctx, "jobs", []byte("job")); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if _, err := c.Read(ctx, "jobs"); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Ack(ctx, "jobs", 1); err != nil {
		t.Fatal(err)
	}
	fams := scrape(t, startHTTP(t, b, HTTPOptions{}))
	for _, m := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"zbroker_pipe_unacked_chunks", []string{"pipe", "jobs"}, 2},
		{"zbroker_pipes_unacked_chunks", nil, 2},
		{"zbroker_pipe_chunks_acked_total", nil, 1},
		{"zbroker_pipe_queued_chunks", []string{"pipe", "jobs"}, 0},
	} {
		if got, ok := value(fams, m.name, m.labels...); !ok || got != m.want {
			t.Errorf("%s%v = %v (present %v), want %v", m.name, m.labels, got, ok, m.want)
		}
	}
}

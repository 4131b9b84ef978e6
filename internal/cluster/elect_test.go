package cluster

import (
	"testing"
	"time"

	"github.com/zbroker/zbroker/internal/natsnode/natstest"
)

// A leader advisory for a pipe's stream ends the publish attempts in
// flight to it, not those to other streams.
func TestElectionsCutPublishWait(t *testing.T) {
	c := natstest.Start(t, 1)
	nc := c.Nodes[0].Conn
	var e elections
	if err := e.watch(nc); err != nil {
		t.Fatal(err)
	}
	defer e.close()
	mine, other := e.context("ZPIPE_a"), e.context("ZPIPE_b")
	if err := nc.Publish(electedAdvisory+"ZPIPE_a", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-mine.Done():
	case <-time.After(testTimeout):
		t.Fatal("the advisory did not end the attempt's context")
	}
	if other.Err() != nil {
		t.Fatal("another stream's attempts ended too")
	}
	if next := e.context("ZPIPE_a"); next.Err() != nil {
		t.Fatal("the next attempt's context is done already")
	}
}

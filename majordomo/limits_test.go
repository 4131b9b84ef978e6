package majordomo

import (
	"strings"
	"testing"
	"time"
)

// SetQueueLimit changes how many requests a service may queue in a
// running broker; requests already queued stay.
func TestSetQueueLimit(t *testing.T) {
	srv := startBroker(t, Options{RequestQueueLimit: 1, RequestTimeout: time.Minute})
	c := dialRaw(t, srv.Endpoint()).optIn()
	c.send("MDPC02", "\x01", "nobody", "1") // queued
	c.send("MDPC02", "\x01", "nobody", "2") // 503: the queue holds 1
	if got := c.recv(); !strings.HasPrefix(got, "MDPC02|\x03|mmi.error|503|nobody") {
		t.Fatalf("second request: %q", got)
	}
	srv.SetQueueLimit(2)
	c.send("MDPC02", "\x01", "nobody", "3") // queued under the new limit
	c.send("MDPC02", "\x01", "nobody", "4") // 503 again
	if got := c.recv(); !strings.HasPrefix(got, "MDPC02|\x03|mmi.error|503|nobody") {
		t.Fatalf("fourth request: %q", got)
	}
	waitStats(t, srv, "two queued", func(st Stats) bool { return st.Queued == 2 })
	srv.SetQueueLimit(1) // lowered: both stay queued, the next is refused
	c.send("MDPC02", "\x01", "nobody", "5")
	if got := c.recv(); !strings.HasPrefix(got, "MDPC02|\x03|mmi.error|503|nobody") {
		t.Fatalf("fifth request: %q", got)
	}
	waitStats(t, srv, "two still queued", func(st Stats) bool { return st.Queued == 2 })
}

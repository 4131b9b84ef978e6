package zpipes

import (
	"strings"
	"testing"
)

// Raising the limits of a running broker admits the WRITEs they held back;
// lowering them holds back later WRITEs.
func TestSetLimitsAdmitsAndHolds(t *testing.T) {
	srv := startServer(t, Options{PipeLimit: 1000})
	w := dialPeer(t, srv)
	expect(t, "OPEN", w.do("OPEN", "p"), "OK")
	chunk := strings.Repeat("x", 400)
	for i := 0; i < 3; i++ {
		expect(t, "WRITE", w.do("WRITE", "p", chunk), "OK")
	}
	w.send("WRITE", "p", "held")
	waitStats(t, srv, func(s Stats) bool { return s.Stalled == 1 && s.Chunks == 3 })
	srv.SetLimits(1<<20, 0)
	expect(t, "held WRITE after raising the limit", w.recv(), "OK")
	if st := srv.Stats(); st.Stalled != 0 || st.Chunks != 4 {
		t.Fatalf("after raising: %+v, want 4 chunks and none held", st)
	}
	srv.SetLimits(100, 0)
	w.send("WRITE", "p", "held again")
	waitStats(t, srv, func(s Stats) bool { return s.Stalled == 1 && s.Chunks == 4 })
}

package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/zbroker/zbroker/zpipes"
)

// fakeMsg is a delivered chunk with its stream sequence; it records its
// acknowledgement.
type fakeMsg struct {
	seq   uint64
	acked bool
}

func (m *fakeMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: m.seq}, NumDelivered: 1}, nil
}
func (m *fakeMsg) Data() []byte                     { return chunk(int(m.seq)) }
func (m *fakeMsg) Headers() nats.Header             { return nil }
func (m *fakeMsg) Subject() string                  { return "zpipes.p" }
func (m *fakeMsg) Reply() string                    { return "" }
func (m *fakeMsg) Ack() error                       { m.acked = true; return nil }
func (m *fakeMsg) DoubleAck(context.Context) error  { m.acked = true; return nil }
func (m *fakeMsg) Nak() error                       { return nil }
func (m *fakeMsg) NakWithDelay(time.Duration) error { return nil }
func (m *fakeMsg) InProgress() error                { return nil }
func (m *fakeMsg) Term() error                      { return nil }
func (m *fakeMsg) TermWithReason(string) error      { return nil }

// The reader's host hands chunks over in stream order, waiting for one
// delivered late; a gap that outlives two ack waits is skipped, and a
// skipped chunk that arrives after all is still read (not taken for one
// whose acknowledgement was lost, which is acknowledged again).
func TestPipeOrderAndGaps(t *testing.T) {
	s := NewPipeStore(nil, PipeConfig{PipeLimit: 1 << 20, Logger: testLog})
	t.Cleanup(func() { s.ticks.Stop(); close(s.stop); s.wg.Wait() })
	q := s.Queue("p").(*pipeQueue)
	r := &reading{stop: make(chan struct{}), room: make(chan struct{}, prefetch)}
	q.reader = r
	s.Handle(spellStart{q, r, 1})
	next := func() []uint64 {
		var got []uint64
		for {
			c, ok := q.Next()
			if !ok {
				return got
			}
			got = append(got, c.ID)
			q.Consumed([]zpipes.Chunk{c})
		}
	}
	deliver := func(seqs ...uint64) []*fakeMsg {
		var ms []*fakeMsg
		for _, seq := range seqs {
			m := &fakeMsg{seq: seq}
			ms = append(ms, m)
			s.Handle(fetched{q: q, r: r, msg: m})
		}
		return ms
	}
	deliver(1, 3, 4)
	if got := next(); len(got) != 1 || got[0] != 1 {
		t.Fatalf("read %v, want [1] (2 missing)", got)
	}
	deliver(2)
	if got := next(); len(got) != 3 || got[0] != 2 || got[2] != 4 {
		t.Fatalf("read %v, want [2 3 4]", got)
	}
	// Delivered again after its acknowledgement was lost: acknowledged.
	if m := deliver(3)[0]; !m.acked || len(next()) != 0 {
		t.Fatalf("chunk 3 delivered again: acked %v", m.acked)
	}
	// 5 never comes: after two ack waits 6 is read; 5, arriving at
	// last, is read too.
	deliver(6)
	q.gapSince = time.Now().Add(-3 * ackWait)
	s.Handle(tick{})
	if got := next(); len(got) != 1 || got[0] != 6 {
		t.Fatalf("read %v after the gap's skip, want [6]", got)
	}
	if m := deliver(5)[0]; m.acked {
		t.Fatal("skipped chunk 5 acknowledged without being read")
	}
	if got := next(); len(got) != 1 || got[0] != 5 {
		t.Fatalf("read %v, want the late chunk 5", got)
	}
}

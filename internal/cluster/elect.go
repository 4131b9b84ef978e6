package cluster

import (
	"context"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/zbroker/zbroker/internal/jsname"
)

// elections cuts a publisher's wait short when its stream elects a leader:
// a publish sent to a leader that stepped down or died is never answered,
// and is retried (same message ID) as soon as JetStream announces the new
// leader, instead of after the attempt's timeout. Each stream with a
// publish in flight has a context, cancelled by the advisory and replaced.
type elections struct {
	mu   sync.Mutex
	ctxs map[string]election
	sub  *nats.Subscription
}

type election struct {
	ctx    context.Context
	cancel context.CancelFunc
}

const electedAdvisory = "$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED."

// watch subscribes to the leader advisories of the pipes' streams; without
// it (no connection) publishes just wait for their timeout.
func (e *elections) watch(nc *nats.Conn) error {
	e.ctxs = map[string]election{}
	if nc == nil {
		return nil
	}
	sub, err := nc.Subscribe(electedAdvisory+"*", func(m *nats.Msg) {
		if stream := strings.TrimPrefix(m.Subject, electedAdvisory); strings.HasPrefix(stream, jsname.PipeStreamPrefix) {
			e.elected(stream)
		}
	})
	e.sub = sub
	return err
}

// context is the context of stream's next publish attempt.
func (e *elections) context(stream string) context.Context {
	e.mu.Lock()
	defer e.mu.Unlock()
	el, ok := e.ctxs[stream]
	if !ok {
		el.ctx, el.cancel = context.WithCancel(context.Background())
		e.ctxs[stream] = el
	}
	return el.ctx
}

// elected cancels the attempts in flight to stream's old leader; forget
// frees what a released pipe's stream used.
func (e *elections) elected(stream string) { e.forget(stream) }

func (e *elections) forget(stream string) {
	e.mu.Lock()
	el, ok := e.ctxs[stream]
	delete(e.ctxs, stream)
	e.mu.Unlock()
	if ok {
		el.cancel()
	}
}

func (e *elections) close() {
	if e.sub != nil {
		e.sub.Unsubscribe()
	}
}

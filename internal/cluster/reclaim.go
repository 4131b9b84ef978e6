package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/zbroker/zbroker/internal/natsnode"
)

// A released pipe's stream is deleted when it holds no chunk and nobody
// reads the pipe anywhere, so that pipes that come and go do not keep a
// Raft group each for ever. Writers on other hosts may be publishing at
// that moment: the reclaimer fences the stream first (MaxBytes fenceBytes:
// every publish is refused as full, and its writer retries with the OK
// withheld), waits fenceGrace for publishes accepted before the fence,
// and deletes the stream only if it is still empty; otherwise it gives
// the limit back. A refused writer finds the stream gone and makes it
// again once the reclaimer has given the lease back: no acknowledged chunk
// is in a deleted stream.
const (
	fenceBytes = 1
	fenceGrace = 500 * time.Millisecond
)

// fenceStale: a writer refused for this long by a fenced stream lifts the
// fence, whose reclaimer died before taking it down. (A variable for
// tests.)
var fenceStale = 10 * time.Second

// reclaim deletes the stream of a pipe released here if it is empty and
// unread, after the channel after (the end of this host's last reading
// spell, which gives its lease back) if not nil.
func (s *PipeStore) reclaim(pipe, stream string, after <-chan struct{}) {
	defer s.reclaims.Add(1)
	if after != nil {
		select {
		case <-after:
		case <-s.stop:
			return
		}
	}
	ctx, cancel := s.context(30 * time.Second)
	defer cancel()
	st, err := s.js.Stream(ctx, stream)
	// After a reader here, its last acknowledgements reach the stream a
	// moment later.
	for tries := 0; after != nil && err == nil && st.CachedInfo().State.Msgs > 0 && tries < 6; tries++ {
		select {
		case <-time.After(fenceGrace):
		case <-ctx.Done():
		}
		st, err = s.js.Stream(ctx, stream)
	}
	if err != nil || st.CachedInfo().State.Msgs > 0 {
		return // gone already, unreachable, or holding chunks
	}
	// The reader lease keeps readers away meanwhile (one arriving waits
	// for it, see handoverWait); held by a reader, it keeps the stream.
	// Writers that find the stream gone make it again only once it is
	// given back (see awaitReclaim).
	rev, err := s.leases.acquireForReclaim(ctx, stream)
	if err != nil {
		return
	}
	defer s.leases.release(stream, rev)
	cfg := st.CachedInfo().Config
	limit := cfg.MaxBytes
	if limit == fenceBytes {
		limit = s.pipeLimit.Load()
	}
	cfg.MaxBytes = fenceBytes
	if _, err := s.js.UpdateStream(ctx, cfg); err != nil {
		s.log.Debug("pipe stream not fenced; kept", "pipe", pipe, "err", err)
		return
	}
	select {
	case <-time.After(fenceGrace):
	case <-ctx.Done():
	}
	if info, err := st.Info(ctx); err == nil && info.State.Msgs == 0 && info.Config.MaxBytes == fenceBytes {
		if err := s.js.DeleteStream(ctx, stream); err == nil {
			s.reclaimed.Add(1)
			s.log.Debug("released pipe's empty stream deleted", "pipe", pipe, "stream", stream)
			return
		}
	}
	// Not empty after all, or unreachable: the limit goes back, even if
	// the store is stopping.
	cfg.MaxBytes = limit
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	err = natsnode.Retry(rctx, "lifting a pipe stream's fence", s.log, func(ctx context.Context) error {
		_, err := s.js.UpdateStream(ctx, cfg)
		return err
	})
	if err != nil {
		s.log.Warn("pipe stream left fenced; its writers lift the fence", "pipe", pipe, "after", fenceStale, "err", err)
	}
}

// liftStaleFence gives the pipe's stream its limit back if it is fenced:
// its reclaimer died before it could.
func (q *pipeQueue) liftStaleFence() {
	ctx, cancel := q.s.context(10 * time.Second)
	defer cancel()
	st, err := q.s.js.Stream(ctx, q.stream)
	if err != nil {
		return
	}
	cfg := st.CachedInfo().Config
	if cfg.MaxBytes != fenceBytes {
		return
	}
	cfg.MaxBytes = q.s.pipeLimit.Load()
	if _, err := q.s.js.UpdateStream(ctx, cfg); err != nil && !errors.Is(err, context.Canceled) {
		q.s.log.Warn("pipe stream still fenced", "pipe", q.name, "err", err)
		return
	}
	q.s.log.Warn("pipe stream fenced for deletion by a host that stopped; fence lifted", "pipe", q.name)
}

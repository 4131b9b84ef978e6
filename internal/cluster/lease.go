package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/zbroker/zbroker/internal/natsnode"
)

// A pipe has one reader in the whole cluster: the host serving it holds
// the pipe's key in the lease bucket, renewed every leaseRenew; a host
// that dies loses it after leaseTTL (the bucket's MaxAge).
const (
	LeaseBucket = "zbroker-pipe-readers"
	leaseTTL    = 15 * time.Second
	leaseRenew  = 5 * time.Second
	// handoverWait is how long a new reader waits for the lease of a
	// reader that is leaving (on another host, handing its chunks back)
	// before it is refused as a second reader.
	handoverWait = 3 * time.Second
	// fetchWait bounds one pull request; a leaving reader's spell ends
	// within it.
	fetchWait = 500 * time.Millisecond
	// releaseWait bounds giving a lease back (also when the host stops):
	// two requests, each of which a loaded server may leave unanswered.
	releaseWait = 5 * time.Second
)

var errLeaseHeld = errors.New("lease held elsewhere")

type leases struct {
	js       jetstream.JetStream
	replicas int
	log      *slog.Logger
	holder   string
	attempts atomic.Uint64 // numbers the values of create
	mu       sync.Mutex
	kv       jetstream.KeyValue
}

func newLeases(js jetstream.JetStream, replicas int, log *slog.Logger) *leases {
	return &leases{js: js, replicas: replicas, log: log, holder: rand.Text()}
}

// bucket opens the lease bucket, creating it on first use.
func (l *leases) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kv != nil {
		return l.kv, nil
	}
	err := natsnode.Retry(ctx, "creating the reader lease bucket", l.log, func(ctx context.Context) error {
		kv, err := l.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      LeaseBucket,
			Description: "zbroker: which host serves each pipe's reader",
			History:     1,
			TTL:         leaseTTL,
			// File, not memory: a memory replica restarts empty, and
			// the group of a replica restarted and a replica killed
			// after it never elects a leader again (every lease
			// request unanswered).
			Storage:  jetstream.FileStorage,
			Replicas: l.replicas,
		})
		if err != nil && strings.Contains(err.Error(), "can not change storage type") {
			// Made in memory by an earlier zbroker: use it as it is.
			l.log.Warn("the reader lease bucket is in memory; delete it (nats kv del "+LeaseBucket+") so that it is made on file: a memory replica restarts empty", "err", err)
			kv, err = l.js.KeyValue(ctx, LeaseBucket)
		}
		l.kv = kv
		return err
	})
	return l.kv, err
}

// acquire takes the lease of key, waiting up to handoverWait while
// another holder has it; errLeaseHeld if it still does.
func (l *leases) acquire(ctx context.Context, key string) (uint64, error) {
	kv, err := l.bucket(ctx)
	if err != nil {
		return 0, err
	}
	deadline := time.Now().Add(handoverWait)
	for {
		rev, err := l.create(ctx, kv, key, "")
		if err == nil {
			return rev, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return 0, err
		}
		if time.Now().After(deadline) {
			return 0, errLeaseHeld
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// reclaimMark begins the value of a lease taken by a reclaimer, which
// may be deleting the pipe's stream: see awaitReclaim.
const reclaimMark = "reclaim:"

// acquireForReclaim takes the lease of key, marked as a reclaimer's, if
// nobody holds it; errLeaseHeld if somebody does.
func (l *leases) acquireForReclaim(ctx context.Context, key string) (uint64, error) {
	kv, err := l.bucket(ctx)
	if err != nil {
		return 0, err
	}
	rev, err := l.create(ctx, kv, key, reclaimMark)
	if errors.Is(err, jetstream.ErrKeyExists) {
		err = errLeaseHeld
	}
	return rev, err
}

// token is a lease value naming this holder and one attempt at writing it
// (see ownWrite), after mark.
func (l *leases) token(mark string) []byte {
	return []byte(mark + l.holder + "." + strconv.FormatUint(l.attempts.Add(1), 36))
}

// ownWrite tells whether a write of token to key that was refused as a
// conflict (err) was in fact this attempt's own: a request whose answer
// was lost (it timed out on a loaded server) may have been applied all
// the same, and its retry then finds key changed, by this very attempt if
// the value is token. Taken for another holder's, the lease was refused
// to every reader until it expired (create), or a reading spell ended
// with "reader lease lost" (renew). It returns key's revision if the
// value is token, and otherwise err, or the error of a read left
// unanswered (to ask again).
func ownWrite(ctx context.Context, kv jetstream.KeyValue, key string, token []byte, err error) (uint64, error) {
	e, gerr := kv.Get(ctx, key)
	switch {
	case gerr == nil && bytes.Equal(e.Value(), token):
		return e.Revision(), nil
	case gerr != nil && !errors.Is(gerr, jetstream.ErrKeyNotFound):
		return 0, gerr
	}
	return 0, err
}

// create takes key with a value naming this attempt (see ownWrite).
func (l *leases) create(ctx context.Context, kv jetstream.KeyValue, key, mark string) (uint64, error) {
	token := l.token(mark)
	var rev uint64
	err := natsnode.Retry(ctx, "taking a reader lease", l.log, func(ctx context.Context) error {
		var err error
		rev, err = kv.Create(ctx, key, token)
		if errors.Is(err, jetstream.ErrKeyExists) {
			rev, err = ownWrite(ctx, kv, key, token, err)
		}
		return err
	})
	return rev, err
}

// awaitReclaim returns once no reclaimer holds the lease of key (or ctx
// ends): it gives the lease back when its DeleteStream has returned; a
// dead reclaimer's lease expires after leaseTTL.
// A stream made again while the server is still deleting the old one of
// that name is broken for good: nats-server unregisters a stream first
// (stream.go, mset.stop) and renames its directory away last
// (filestore.go, fileStore.Delete), taking the new stream's files with
// it, and a create runs concurrently with the delete in another JetStream
// API worker. The new stream then fails every store once it opens a
// second block ("Critical write error ... msgs/2.blk: no such file").
func (l *leases) awaitReclaim(ctx context.Context, key string) error {
	kv, err := l.bucket(ctx)
	if err != nil {
		return err
	}
	for {
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || err == nil && !bytes.HasPrefix(e.Value(), []byte(reclaimMark)) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// renew extends the lease of key at revision rev, with a value naming
// this renewal: a retry finds the revision moved on, by this renewal or
// by another holder after ours expired (see ownWrite).
func (l *leases) renew(ctx context.Context, key string, rev uint64) (uint64, error) {
	token := l.token("")
	var next uint64
	err := natsnode.Retry(ctx, "renewing a reader lease", l.log, func(ctx context.Context) error {
		var err error
		next, err = l.kv.Update(ctx, key, token, rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			next, err = ownWrite(ctx, l.kv, key, token, err)
		}
		return err
	})
	return next, err
}

// release gives the lease back (if still ours), so the next reader need
// not wait for it to expire: an unanswered request is sent again, up to
// releaseWait. A revision that moved on means the lease is
// not ours any more: it expired, or an earlier request whose answer was
// lost deleted it.
func (l *leases) release(key string, rev uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), releaseWait)
	defer cancel()
	err := natsnode.Retry(ctx, "giving a reader lease back", l.log, func(ctx context.Context) error {
		return l.kv.Delete(ctx, key, jetstream.LastRevision(rev))
	})
	if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		l.log.Warn("reader lease not given back; it expires by itself", "key", key, "err", fmt.Sprint(err), "within", leaseTTL)
	}
}

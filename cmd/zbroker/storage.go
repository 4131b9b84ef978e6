package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/zbroker/zbroker/clone"
	"github.com/zbroker/zbroker/clone/logjournal"
	"github.com/zbroker/zbroker/internal/units"
	"github.com/zbroker/zbroker/internal/wal"
	"github.com/zbroker/zbroker/zpipes"
	"github.com/zbroker/zbroker/zpipes/logstore"
)

// storageFlags make zpipes (and Clone) durable (docs/durability.md).
type storageFlags struct {
	dataDir    string
	fsync      wal.SyncMode
	interval   time.Duration
	cacheLimit int64
}

func registerStorageFlags(fs *flag.FlagSet) *storageFlags {
	s := &storageFlags{cacheLimit: 64 << 20}
	fs.StringVar(&s.dataDir, "data-dir", "", "keep queued chunks and the Clone map in `dir`, so they survive a crash or restart (default: memory only); in cluster mode also the embedded JetStream node's store")
	fs.Func("fsync", "with --data-dir, when to fsync: always (before each OK, batched), interval (every --fsync-interval; the default) or never", func(v string) (err error) {
		s.fsync, err = wal.ParseSyncMode(v)
		return err
	})
	fs.DurationVar(&s.interval, "fsync-interval", 100*time.Millisecond, "with --fsync interval, the most a power loss can take")
	fs.Var(units.Size{P: &s.cacheLimit}, "cache-limit", "with --data-dir, bytes of queued chunks kept in memory; the rest is read back from disk")
	return s
}

// durable reports whether the services keep their state on disk.
func (s *storageFlags) durable() bool { return s.dataDir != "" }

// apply opens the stores in the data directory for the services served.
// The services close them when they stop.
func (s *storageFlags) apply(log *slog.Logger, zp *zpipes.Options, kv *clone.Options, serveZpipes, serveClone bool) error {
	if !s.durable() {
		return nil
	}
	mode := s.fsync
	if serveZpipes {
		st, err := logstore.Open(logstore.Options{
			Dir: filepath.Join(s.dataDir, "zpipes"), Sync: mode, SyncInterval: s.interval,
			CacheLimit: s.cacheLimit, Logger: log,
		})
		if err != nil {
			return dataDirError(s.dataDir, err)
		}
		zp.Store = st
	}
	if serveClone {
		j, err := logjournal.Open(logjournal.Options{
			Dir: filepath.Join(s.dataDir, "clone"), Sync: mode, SyncInterval: s.interval, Logger: log,
		})
		if err == nil {
			kv.Journal = j
		} else {
			if zp.Store != nil {
				zp.Store.Close()
			}
			return dataDirError(s.dataDir, err)
		}
	}
	log.Info("durable storage", "data_dir", s.dataDir, "fsync", mode, "fsync_interval", s.interval,
		"cache_limit", units.FormatSize(s.cacheLimit))
	return nil
}

func dataDirError(dir string, err error) error {
	if errors.Is(err, wal.ErrLocked) {
		return fmt.Errorf("--data-dir %s is in use by another broker: %w", dir, err)
	}
	return fmt.Errorf("--data-dir %s: %w", dir, err)
}

package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/zbroker/zbroker/internal/wal"
	"github.com/zbroker/zbroker/zpipes"
	"github.com/zbroker/zbroker/zpipes/logstore"
)

// Durable targets are "zpipes-MODE": a zpipes broker with a logstore in a
// fresh directory under $TMPDIR, fsyncing as --fsync MODE does. The memory
// broker ("zpipes") in the same run is their baseline.

const durablePrefix = "zpipes-"

// ackTarget is the memory broker driven by acknowledging readers (--ack).
const ackTarget = "zpipes+ack"

// startDurable starts the broker of a durable target; stop closes it and
// prints the fsyncs it did on stdout ("fsyncs N").
func startDurable(mode, endpoint string, stdout, stderr io.Writer) (stop func(), err error) {
	m, err := wal.ParseSyncMode(mode)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "zpipes-bench-")
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := logstore.Open(logstore.Options{Dir: dir, Sync: m, Logger: log})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	srv, err := zpipes.Start(zpipes.Options{Endpoint: endpoint, Logger: log, Store: st})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return func() {
		srv.Close()
		fmt.Fprintf(stdout, "fsyncs %d\n", st.Stats().Fsyncs)
		os.RemoveAll(dir)
	}, nil
}

// fsyncPerChunkRate measures, in $TMPDIR, how many 64-byte records a
// second one write+fsync each allows: the rate group commit is compared
// with.
func fsyncPerChunkRate(d time.Duration) (float64, error) {
	f, err := os.CreateTemp("", "zpipes-bench-fsync-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	rec := make([]byte, 64+wal.RecordHeader)
	n := 0
	start := time.Now()
	for time.Since(start) < d || n < 20 {
		if _, err := f.Write(rec); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/metastore/metastore/node"
	"github.com/metastore/metastore/storeactor"
)

func defragCommand() *command {
	var dataDir string
	return &command{
		path:  "defrag",
		use:   "defrag [flags]",
		short: "Defragments the storage of the MetaStore",
		long: `Compacts the pebble database of a data directory that no running member uses
(<data-dir>/member/pebble): a manual compaction of its whole key space, which
rewrites the tables without deleted and overwritten data. It waits up to
--timeout for the database's lock (a running member holds it).
`,
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&dataDir, "data-dir", "", "Required. Defragments a data directory not in use by MetaStore.")
		},
		setup: func(cc *cobra.Command) {
			_ = cc.MarkFlagRequired("data-dir")
			_ = cc.MarkFlagDirname("data-dir")
		},
		run: func(c *cli, args []string) int {
			lg := newLogger(c.stderr)
			defer lg.Sync()
			if err := defrag(lg, dataDir, c.g.timeout); err != nil {
				return c.fail(exitError, fmt.Errorf("Failed to defragment MetaStore data[%s] (%w)", dataDir, err))
			}
			return exitSuccess
		},
	}
}

func defrag(lg *zap.Logger, dataDir string, timeout time.Duration) error {
	paths, err := node.ExistingDataDir(dataDir)
	if err != nil {
		return err
	}
	dir := paths.DB
	db, err := openLocked(paths, timeout, false)
	if err != nil {
		return err
	}
	start := time.Now()
	before := int64(db.Metrics().DiskSpaceUsage())
	lg.Info("defragmenting", zap.String("path", dir), zap.Int64("current-db-size-bytes", before),
		zap.String("current-db-size", humanBytes(uint64(before))))
	err = compactAll(db)
	if err == nil {
		err = db.Flush()
	}
	after := int64(db.Metrics().DiskSpaceUsage())
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	lg.Info("finished defragmenting directory", zap.String("path", dir),
		zap.Int64("current-db-size-bytes-diff", after-before), zap.Int64("current-db-size-bytes", after),
		zap.String("current-db-size", humanBytes(uint64(after))), zap.Duration("took", time.Since(start)))
	return nil
}

// openLocked opens a stopped member's DB with its WAL, waiting up to
// timeout (0: for ever) while another process holds its lock.
func openLocked(p node.StoragePaths, timeout time.Duration, readOnly bool) (*pebble.DB, error) {
	opts := storeactor.PebbleOptions()
	opts.ErrorIfNotExists, opts.ReadOnly, opts.WALDir = true, readOnly, p.WAL
	deadline := time.Now().Add(timeout)
	for {
		db, err := pebble.Open(p.DB, opts)
		if err == nil {
			return db, nil
		}
		if !isLockErr(err) {
			return nil, err
		}
		if timeout > 0 && time.Now().After(deadline) {
			return nil, fmt.Errorf("database is in use (lock held by another process; stop the member first): %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func isLockErr(err error) bool {
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) ||
		strings.Contains(err.Error(), "lock")
}

// compactAll compacts from the first key to just past the last one.
func compactAll(db *pebble.DB) error {
	it, err := db.NewIter(nil)
	if err != nil {
		return err
	}
	var first, last []byte
	if it.First() {
		first = append(first, it.Key()...)
		if it.Last() {
			last = append(last, it.Key()...)
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	if first == nil {
		return nil // empty
	}
	return db.Compact(context.Background(), first, append(last, 0), true)
}

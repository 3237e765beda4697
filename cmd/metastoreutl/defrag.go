package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

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
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&dataDir, "data-dir", "", "Required. Defragments a data directory not in use by MetaStore.")
		},
		run: func(c *cli, args []string) int {
			if !flagSet(c.fs, "data-dir") {
				fmt.Fprintf(c.stderr, "Error: required flag(s) %q not set\n", "data-dir")
				c.usage(c.stderr, false)
				return exitError
			}
			lg := newLogger(c.stderr)
			defer lg.Sync()
			if err := defrag(lg, dataDir, c.g.timeout); err != nil {
				return c.fail(exitError, fmt.Errorf("Failed to defragment MetaStore data[%s] (%w)", dataDir, err))
			}
			return exitSuccess
		},
	}
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func defrag(lg *zap.Logger, dataDir string, timeout time.Duration) error {
	dir := filepath.Join(dataDir, "member", "pebble")
	if _, err := os.Stat(dir); err != nil {
		return err
	}
	db, err := openLocked(dir, timeout)
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

// openLocked opens the DB, waiting up to timeout (0: for ever) while
// another process holds its lock.
func openLocked(dir string, timeout time.Duration) (*pebble.DB, error) {
	opts := storeactor.PebbleOptions()
	opts.ErrorIfNotExists = true
	deadline := time.Now().Add(timeout)
	for {
		db, err := pebble.Open(dir, opts)
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

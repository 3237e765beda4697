package node_test

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/metastore/metastore/node/nodetest"
)

// --unsafe-no-fsync does what it says: while a member starts, takes
// writes and streams a snapshot (a pebble checkpoint), not one fsync
// reaches the disk; without it, the same work syncs. The writes are still
// written: a restart on the same (uncrashed) disk finds them.
func TestUnsafeNoFsyncSyncsNothing(t *testing.T) {
	for _, unsafe := range []bool{false, true} {
		t.Run(fmt.Sprintf("unsafe-no-fsync=%t", unsafe), func(t *testing.T) {
			var syncs atomic.Int64
			disk := vfs.NewMem()
			fs := errorfs.Wrap(disk, errorfs.InjectorFunc(func(op errorfs.Op) error {
				switch op.Kind {
				case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
					syncs.Add(1)
				}
				return nil
			}))
			cfg := loneFSConfig(fs)
			cfg.WALDir = "/wal"
			cfg.UnsafeNoFsync = unsafe
			n := nodetest.Start(t, cfg)
			var rev int64
			for i := range 20 {
				rev = putOne(t, n, "k", fmt.Sprint(i))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			snap, err := nodetest.Client(t, n).Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, snap); err != nil {
				t.Fatal(err)
			}
			snap.Close()
			n.Stop()

			switch got := syncs.Load(); {
			case unsafe && got != 0:
				t.Fatalf("%d fsyncs with --unsafe-no-fsync", got)
			case !unsafe && got == 0:
				t.Fatal("no fsync without --unsafe-no-fsync: the count measures nothing")
			}
			checkValue(t, nodetest.Start(t, cfg), "k", "19", rev)
		})
	}
}

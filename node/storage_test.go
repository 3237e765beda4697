package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/metastore/metastore/node"
	"github.com/metastore/metastore/node/nodetest"
)

// A power loss right after a member's first start keeps what it
// acknowledged: pebble syncs its files and its own directory, but the
// entries naming the data dir and its parents are the parents' to sync,
// and a directory the crash takes back takes every file in it along.
func TestDataDirSurvivesPowerLoss(t *testing.T) {
	disk := vfs.NewCrashableMem()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	put, err := nodetest.Client(t, startLone(t, disk)).Put(ctx, "k", "v")
	if err != nil {
		t.Fatal(err)
	}
	// The disk as a power loss leaves it: what was synced, nothing else.
	got, err := nodetest.Client(t, startLone(t, disk.CrashClone(vfs.CrashCloneCfg{}))).Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "v" || got.Kvs[0].ModRevision != put.Header.Revision {
		t.Fatalf("after the power loss: %v at revision %d; acknowledged: v at revision %d", got.Kvs, got.Header.Revision, put.Header.Revision)
	}
}

// startLone starts a one-member cluster on fs, serving clients on a port
// of its own.
func startLone(t *testing.T, fs vfs.FS) *node.Node {
	t.Helper()
	return nodetest.Start(t, loneFSConfig(fs))
}

// loneFSConfig is the configuration startLone starts with: a lone
// member whose files are on fs.
func loneFSConfig(fs vfs.FS) node.Config {
	cfg := nodetest.Lone("lone", loneDir)
	cfg.FS = fs
	return cfg
}

// What a crash left in the snapshot folder — a checkpoint being sent to a
// follower, one being received from the leader, the table made from it —
// is removed when the member starts: nothing resumes them, and each is
// as large as the DB.
func TestStartRemovesSnapshotLeftoversOfEachKind(t *testing.T) {
	fs := vfs.NewMem()
	snap := "/data/lone/member/snap"
	for _, f := range []string{"checkpoint-1-1/000001.sst", "recv-0000000000000002-0000000000000064/MANIFEST-000001",
		"recv-0000000000000002-0000000000000064.sst"} {
		path := fs.PathJoin(snap, f)
		if err := fs.MkdirAll(fs.PathDir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		w, err := fs.Create(path, vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	startLone(t, fs)
	if left, err := fs.List(snap); err != nil || len(left) > 0 {
		t.Fatalf("after the start, %s holds %v (%v)", snap, left, err)
	}
}

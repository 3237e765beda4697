package node

import (
	"fmt"
	"io"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/storeactor"
)

// <data-dir>/member/snap holds transient copies of the database only, each
// a full copy:
//
//   - checkpoint-*: taken to send a snapshot to a follower or a client,
//     removed when the transfer ends (storeactor.Snapshot.Reader);
//   - recv-<term>-<index>: a leader's snapshot unpacked by the transport
//     until the store installs it (the store removes it then, and
//     recv-*.sst, the table made from it, once ingested).
//
// None is needed across a restart: a snapshot being sent is sent again, and
// raft records a received snapshot only after the store has installed it,
// so the leader sends it again if a crash came first. What a crash left is
// removed at start (cleanSnapDir); a received snapshot that raft rejects
// (stale: the member has applied past it) is removed when the next one
// arrives (receiveSnapshot).

const receivedPrefix = "recv-"

// cleanSnapDir removes the leftovers of a crash from dir, and says what it
// removed. Other entries are left alone. A failure to remove is logged, not
// fatal: the member works without the space.
func cleanSnapDir(lg *zap.Logger, fs vfs.FS, dir string) {
	names, err := fs.List(dir)
	if err != nil {
		return // no such folder yet: nothing was ever made there
	}
	for _, name := range names {
		if !strings.HasPrefix(name, storeactor.CheckpointPrefix) && !strings.HasPrefix(name, receivedPrefix) {
			continue
		}
		removeSnapData(lg, fs, fs.PathJoin(dir, name), "removed leftover snapshot data")
	}
}

// removeSnapData removes path (a folder or a file) and logs msg with its
// size, or why it could not be removed.
func removeSnapData(lg *zap.Logger, fs vfs.FS, path, msg string) {
	size := diskUsage(fs, path)
	if err := fs.RemoveAll(path); err != nil {
		lg.Warn("failed to remove snapshot data", zap.String("path", path), zap.Error(err))
		return
	}
	lg.Info(msg, zap.String("path", path), zap.Int64("bytes", size))
}

// diskUsage is the size of path's files: a checkpoint is flat, so one
// level is enough.
func diskUsage(fs vfs.FS, path string) int64 {
	st, err := fs.Stat(path)
	if err != nil {
		return 0
	}
	if !st.IsDir() {
		return st.Size()
	}
	names, _ := fs.List(path)
	var n int64
	for _, name := range names {
		if st, err := fs.Stat(fs.PathJoin(path, name)); err == nil && !st.IsDir() {
			n += st.Size()
		}
	}
	return n
}

// receiveSnapshot unpacks the data of the leader's snapshot m under root,
// where the raft actor will look for it (raftactor.ReceivedSnapshotDir).
// What a failed receive unpacked is removed. Earlier received snapshots
// at or below applied (the store's applied index) are removed first: raft
// rejects a snapshot at or below its commit index, which is at least the
// store's applied index, and the store has done with one it installed.
func receiveSnapshot(lg *zap.Logger, fs vfs.FS, root string, applied uint64, m *raftpb.Message, data io.Reader) error {
	meta := m.GetSnapshot().GetMetadata()
	dir := raftactor.ReceivedSnapshotDir(fs, root, meta.GetIndex(), meta.GetTerm())
	releaseReceived(lg, fs, root, applied, fs.PathBase(dir))
	_ = fs.RemoveAll(dir)
	if err := storeactor.ReceiveCheckpoint(fs, dir, data); err != nil {
		if rerr := fs.RemoveAll(dir); rerr != nil {
			lg.Warn("failed to remove snapshot data", zap.String("path", dir), zap.Error(rerr))
		}
		return err
	}
	return nil
}

// releaseReceived removes the received snapshots under root, other than
// keep, at or below applied.
func releaseReceived(lg *zap.Logger, fs vfs.FS, root string, applied uint64, keep string) {
	names, err := fs.List(root)
	if err != nil {
		return
	}
	for _, name := range names {
		if index, ok := receivedIndex(name); ok && index <= applied && name != keep {
			removeSnapData(lg, fs, fs.PathJoin(root, name), "removed stale received snapshot")
		}
	}
}

// receivedIndex is the raft index of a received snapshot's folder, named
// by raftactor.ReceivedSnapshotDir: recv-<term %016x>-<index %016x>.
func receivedIndex(name string) (uint64, bool) {
	var term, index uint64
	if len(name) != len(receivedPrefix)+33 {
		return 0, false // recv-*.sst, or not ours
	}
	if _, err := fmt.Sscanf(name, receivedPrefix+"%016x-%016x", &term, &index); err != nil {
		return 0, false
	}
	return index, true
}

package node

import "github.com/cockroachdb/pebble/v2/vfs"

// noSyncFS is --unsafe-no-fsync: every file and directory it opens
// ignores Sync, SyncData and SyncTo. It sits under everything the member
// writes — pebble (its WAL, so the raft log's synced batches, its tables,
// MANIFEST and checkpoints), the snapshot files and the data dir's own
// records — so that no fsync reaches the disk, as etcd's flag promises.
type noSyncFS struct{ vfs.FS }

func (fs noSyncFS) Unwrap() vfs.FS { return fs.FS }

func (fs noSyncFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	return noSync(fs.FS.Create(name, category))
}

func (fs noSyncFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	return noSync(fs.FS.Open(name, opts...))
}

func (fs noSyncFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return noSync(fs.FS.OpenReadWrite(name, category, opts...))
}

func (fs noSyncFS) OpenDir(name string) (vfs.File, error) { return noSync(fs.FS.OpenDir(name)) }

func (fs noSyncFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	return noSync(fs.FS.ReuseForWrite(oldname, newname, category))
}

func noSync(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return f, err
	}
	return noSyncFile{f}, nil
}

type noSyncFile struct{ vfs.File }

func (noSyncFile) Sync() error                { return nil }
func (noSyncFile) SyncData() error            { return nil }
func (noSyncFile) SyncTo(int64) (bool, error) { return false, nil }

package storeactor

import (
	"archive/tar"
	"fmt"
	"io"
	"path"
	"sort"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// MetaStore's snapshot format (Maintenance.Snapshot, `etcdctl snapshot
// save`, `metastoreutl snapshot ...`):
//
//	a tar archive (USTAR, 512-byte blocks) of a pebble checkpoint of the
//	member's DB — every file of it, in name order, under "db/" — followed
//	by the SHA-256 (32 bytes) of everything before it.
//
// The archive's length is a multiple of 512, so the whole stream is 512n +
// 32 bytes: the shape etcdctl checks for ("sha256 checksum not found"
// otherwise), as it is for etcd's bbolt snapshots. The checkpoint holds the
// store's key space (and the raft log's truncation point) at one point in
// time; a restore keeps the store and starts a new raft log.

// SnapshotDir is the folder, under the archive's root, holding the DB files.
const SnapshotDir = "db"

// Snapshotter makes snapshots of one DB. fs is the DB's filesystem (the
// in-memory one with --storage=memory); checkpoints are made under dir on
// it and removed when sent. Each is a full copy of the DB (hard links while
// the DB's files live, real bytes once compactions replace them), so every
// path that takes one removes it; a crash leaves it behind for the
// member's start-up to remove (CheckpointPrefix).
type Snapshotter struct {
	db  *pebble.DB
	fs  vfs.FS
	dir string
	seq atomic.Uint64
}

func NewSnapshotter(db *pebble.DB, fs vfs.FS, dir string) *Snapshotter {
	return &Snapshotter{db: db, fs: fs, dir: dir}
}

// CheckpointPrefix starts the name of every checkpoint a Snapshotter makes
// under its dir.
const CheckpointPrefix = "checkpoint-"

// Snapshot is one checkpoint, ready to be written as an archive.
type Snapshot struct {
	fs     vfs.FS
	dir    string
	files  []snapshotFile
	taken  time.Time // for etcd_disk_backend_snapshot_duration_seconds
	closed atomic.Bool
}

type snapshotFile struct {
	name string
	size int64
}

// Take checkpoints the DB. The caller must Close the Snapshot.
func (s *Snapshotter) Take() (*Snapshot, error) {
	start := time.Now()
	dir := s.fs.PathJoin(s.dir, fmt.Sprintf(CheckpointPrefix+"%d-%d", time.Now().UnixNano(), s.seq.Add(1)))
	if err := s.fs.MkdirAll(s.dir, 0o700); err != nil {
		return nil, err
	}
	if err := s.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		_ = s.fs.RemoveAll(dir)
		return nil, err
	}
	snap := &Snapshot{fs: s.fs, dir: dir, taken: start}
	names, err := s.fs.List(dir)
	if err != nil {
		snap.Close()
		return nil, err
	}
	sort.Strings(names)
	for _, n := range names {
		st, err := s.fs.Stat(s.fs.PathJoin(dir, n))
		if err != nil {
			snap.Close()
			return nil, err
		}
		if st.IsDir() {
			continue // a checkpoint is flat; nothing else is expected here
		}
		snap.files = append(snap.files, snapshotFile{name: n, size: st.Size()})
	}
	return snap, nil
}

// Open takes a snapshot and streams its archive (see Snapshot.Reader).
func (s *Snapshotter) Open() (io.ReadCloser, error) {
	snap, err := s.Take()
	if err != nil {
		return nil, err
	}
	return snap.Reader(), nil
}

// Reader streams the archive. Closing it, before the end too (the peer or
// client went away), stops the stream and removes the checkpoint before
// it returns, so that nothing of the snapshot outlives its transfer.
func (s *Snapshot) Reader() io.ReadCloser {
	pr, pw := io.Pipe()
	written := make(chan struct{})
	go func() {
		defer close(written)
		_, err := s.WriteTo(pw)
		pw.CloseWithError(err)
	}()
	return &snapshotReader{PipeReader: pr, snap: s, written: written}
}

type snapshotReader struct {
	*io.PipeReader
	snap    *Snapshot
	written chan struct{}
}

func (r *snapshotReader) Close() error {
	r.PipeReader.Close() // unblocks the writer if the reader stopped early
	<-r.written
	return r.snap.Close()
}

// Size is the archive's length in bytes (without the checksum).
func (s *Snapshot) Size() int64 {
	n := int64(1024) // the two zero blocks that end an archive
	for _, f := range s.files {
		n += 512 + (f.size+511)/512*512
	}
	return n
}

// WriteTo writes the archive to w.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	tw := tar.NewWriter(cw)
	for _, f := range s.files {
		hdr := &tar.Header{Name: path.Join(SnapshotDir, f.name), Mode: 0o600, Size: f.size,
			Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(hdr); err != nil {
			return cw.n, err
		}
		in, err := s.fs.Open(s.fs.PathJoin(s.dir, f.name))
		if err != nil {
			return cw.n, err
		}
		_, err = io.CopyN(tw, in, f.size)
		in.Close()
		if err != nil {
			return cw.n, err
		}
	}
	if err := tw.Close(); err != nil {
		return cw.n, err
	}
	if cw.n != s.Size() {
		return cw.n, fmt.Errorf("storeactor: snapshot archive is %d bytes, expected %d", cw.n, s.Size())
	}
	return cw.n, nil
}

// Close removes the checkpoint. The first Close records the snapshot's
// life, from Take (etcd: from its read txn to its Close).
func (s *Snapshot) Close() error {
	if !s.closed.Swap(true) {
		snapshotTransferSec.Observe(time.Since(s.taken).Seconds())
	}
	return s.fs.RemoveAll(s.dir)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

package node

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/metastore/metastore/durabledir"
)

// A MetaStore data dir:
//
//	<data-dir>/member/metastore.json  the format record (formatRecord)
//	<data-dir>/member/pebble/         the pebble DB (its WAL too, without --wal-dir)
//	<data-dir>/member/raftlog/        the raft log's WAL (raftwal), without --wal-dir
//	<data-dir>/member/snap/           transient snapshot copies (snapdir.go)
//	<data-dir>/fixtures/              auto TLS certificates (tls.go)
//	<wal-dir>/metastore-wal.json      with --wal-dir: the WAL marker (walMarker)
//	<wal-dir>/*.log                   with --wal-dir: pebble's WAL
//	<wal-dir>/raftlog/                with --wal-dir: the raft log's WAL
//
// The record is written before anything else of the member, and durably:
// a data dir without one holds no data of this binary's making, unless it
// was made before the record existed (it then has member/pebble, and gets
// the record at its next start).

// formatVersion is the layout this binary writes and understands. A data
// dir recording a greater one was written by a newer MetaStore, whose
// files this one may misread: it is refused, not opened. An older one is
// upgraded in place: its record is rewritten before anything else, so
// that the MetaStore that wrote it refuses it from then on.
//
//	1  the raft log's entries and hard state in pebble
//	2  the raft log in its own WAL (raftlog/); the raft actor moves a
//	   format 1 log there at its first start
const formatVersion = 2

const (
	recordName = "metastore.json"
	markerName = "metastore-wal.json"
)

// MigratingMarker is a file under <data-dir>/member while `metastoreutl
// migrate from-etcd` writes the data dir (in a temporary dir, renamed into
// place once complete): a member never starts on a dir that holds one,
// whether the migration still runs or was interrupted.
const MigratingMarker = "migrating"

// formatRecord is <data-dir>/member/metastore.json.
type formatRecord struct {
	Format int `json:"format"`
	// WALDir is the absolute path of the member's WAL directory; empty:
	// inside member/pebble.
	WALDir string `json:"wal-dir,omitempty"`
	// WALID pairs the data dir with the marker in its WAL dir.
	WALID string `json:"wal-id,omitempty"`
}

// walMarker is <wal-dir>/metastore-wal.json. It tells a WAL dir that holds
// this member's WAL from an empty one at the same path (a disk that is not
// mounted) and from another member's: pebble, finding no WAL, would open
// the DB without the writes not yet flushed from it.
type walMarker struct {
	WALID string `json:"wal-id"`
}

// dataDirLayout is where a member's files are, and what a start must
// write before opening pebble.
type dataDirLayout struct {
	dataDir, memberDir, dbDir string
	walDir                    string // absolute; "": inside dbDir
	record                    formatRecord
	writeRecord, writeMarker  bool
}

// inspectDataDir decides, reading only, whether a member may start on
// dataDir with its WAL in walDir ("" for inside the data dir), and what
// must be written first. It refuses an etcd data dir, a format newer than
// formatVersion, and a WAL dir other than the one the data dir records or
// that does not hold this data dir's WAL marker.
func inspectDataDir(fs vfs.FS, dataDir, walDir string) (dataDirLayout, error) {
	l := dataDirLayout{dataDir: dataDir, memberDir: filepath.Join(dataDir, "member")}
	l.dbDir = filepath.Join(l.memberDir, "pebble")
	if walDir != "" {
		abs, err := filepath.Abs(walDir)
		if err != nil {
			return l, fmt.Errorf("--wal-dir %q: %w", walDir, err)
		}
		l.walDir = abs
	}
	if migrating, err := exists(fs, filepath.Join(l.memberDir, MigratingMarker)); err != nil {
		return l, fmt.Errorf("data dir %q: %w", dataDir, err)
	} else if migrating {
		return l, fmt.Errorf("data dir %q is being written by `metastoreutl migrate from-etcd`, or its migration was interrupted (it holds %s): "+
			"wait for the migration to finish, or remove the dir and migrate again", dataDir, filepath.Join(l.memberDir, MigratingMarker))
	}
	rec, found, err := readJSON[formatRecord](fs, filepath.Join(l.memberDir, recordName))
	if err != nil {
		return l, fmt.Errorf("data dir %q: format record: %w", dataDir, err)
	}
	hasDB, err := exists(fs, l.dbDir)
	if err != nil {
		return l, fmt.Errorf("data dir %q: %w", dataDir, err)
	}
	switch {
	case !found && !hasDB:
		if what, err := etcdFiles(fs, l.memberDir); err != nil {
			return l, fmt.Errorf("data dir %q: %w", dataDir, err)
		} else if what != "" {
			return l, fmt.Errorf("data dir %q is an etcd data dir (it has %s), which MetaStore does not open; "+
				"copy its data into a new MetaStore data dir with `metastoreutl migrate from-etcd %s --data-dir <new dir>` "+
				"and start MetaStore on that (see docs/migration.md)", dataDir, what, dataDir)
		}
		rec = formatRecord{Format: formatVersion, WALDir: l.walDir}
		if l.walDir != "" {
			rec.WALID = newWALID()
		}
		l.writeRecord = true
	case !found: // made before the record: its WAL is in member/pebble
		rec = formatRecord{Format: formatVersion}
		l.writeRecord = true
	case rec.Format > formatVersion:
		return l, fmt.Errorf("data dir %q has format version %d, newer than the %d this MetaStore understands: "+
			"start it with the MetaStore release that wrote it, or a later one", dataDir, rec.Format, formatVersion)
	case rec.Format < 1:
		return l, fmt.Errorf("data dir %q: format record %s has no valid format version (%d)",
			dataDir, filepath.Join(l.memberDir, recordName), rec.Format)
	case rec.Format < formatVersion:
		rec.Format = formatVersion
		l.writeRecord = true
	}
	l.record = rec
	if rec.WALDir != l.walDir {
		return l, walDirMismatch(dataDir, rec.WALDir, l.walDir)
	}
	if l.walDir == "" {
		return l, nil
	}
	marker, found, err := readJSON[walMarker](fs, filepath.Join(l.walDir, markerName))
	switch {
	case err != nil:
		return l, fmt.Errorf("--wal-dir %q: WAL marker: %w", l.walDir, err)
	case !found && hasDB:
		return l, fmt.Errorf("--wal-dir %q holds no WAL of data dir %q (no %s): is its disk mounted? "+
			"Opening the data dir without its WAL would lose the writes not yet flushed from it", l.walDir, dataDir, markerName)
	case !found:
		l.writeMarker = true // a first start, or one that stopped before writing it
	case marker.WALID != rec.WALID:
		return l, fmt.Errorf("--wal-dir %q holds the WAL of another data dir than %q: give each member a WAL dir of its own",
			l.walDir, dataDir)
	}
	return l, nil
}

// raftLogDir is where the raft log's WAL is: beside pebble's WAL.
func (l dataDirLayout) raftLogDir() string {
	if l.walDir != "" {
		return filepath.Join(l.walDir, "raftlog")
	}
	return filepath.Join(l.memberDir, "raftlog")
}

// walDirMismatch is the refusal of a start whose --wal-dir is not where the
// data dir's WAL is: pebble would open without the WAL, and so without the
// writes not yet flushed from it.
func walDirMismatch(dataDir, recorded, given string) error {
	if recorded == "" {
		return fmt.Errorf("data dir %q keeps its WAL inside it (member/pebble), but --wal-dir is %q: "+
			"start the member without --wal-dir", dataDir, given)
	}
	if given == "" {
		return fmt.Errorf("data dir %q has its WAL in %q, but --wal-dir is not set: start the member with --wal-dir=%s",
			dataDir, recorded, recorded)
	}
	return fmt.Errorf("data dir %q has its WAL in %q, but --wal-dir is %q: start the member with --wal-dir=%s",
		dataDir, recorded, given, recorded)
}

// etcdFiles names what marks dir (a data dir's member/) as etcd's, as
// etcd's server/storage/datadir lays it out: its WAL directory or its
// bbolt backend. "" when it has neither.
func etcdFiles(fs vfs.FS, memberDir string) (string, error) {
	for _, p := range []string{filepath.Join(memberDir, "wal"), filepath.Join(memberDir, "snap", "db")} {
		if ok, err := exists(fs, p); err != nil || ok {
			return p, err
		}
	}
	return "", nil
}

// prepare writes, durably, what inspectDataDir found missing: the record
// first (it commits the data dir to this layout and WAL dir), then the WAL
// dir and its marker. A crash between the two leaves a record and no DB,
// which the next start completes.
func (l dataDirLayout) prepare(fs vfs.FS) error {
	if err := durabledir.Create(fs, l.memberDir); err != nil {
		return err
	}
	if l.writeRecord {
		if err := writeJSONDurably(fs, filepath.Join(l.memberDir, recordName), l.record); err != nil {
			return fmt.Errorf("write format record: %w", err)
		}
	}
	if l.walDir == "" {
		return nil
	}
	if err := durabledir.Create(fs, l.walDir); err != nil {
		return err
	}
	if l.writeMarker {
		if err := writeJSONDurably(fs, filepath.Join(l.walDir, markerName), walMarker{WALID: l.record.WALID}); err != nil {
			return fmt.Errorf("write WAL marker: %w", err)
		}
	}
	return nil
}

func newWALID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail
	return hex.EncodeToString(b[:])
}

func exists(fs vfs.FS, path string) (bool, error) {
	_, err := fs.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// readJSON reads path into a T, and whether it exists.
func readJSON[T any](fs vfs.FS, path string) (T, bool, error) {
	var v T
	f, err := fs.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return v, false, nil
	}
	if err != nil {
		return v, false, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return v, false, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, false, fmt.Errorf("%s: %w", path, err)
	}
	return v, true, nil
}

// writeJSONDurably replaces path with v's JSON so that a crash leaves
// either the old file or the whole new one: it writes and syncs a
// temporary file, renames it over path and syncs the directory.
func writeJSONDurably(fs vfs.FS, path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return err
	}
	if err := fs.Rename(tmp, path); err != nil {
		return err
	}
	return durabledir.Sync(fs, fs.PathDir(path))
}

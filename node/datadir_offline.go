package node

import (
	"github.com/cockroachdb/pebble/v2/vfs"
)

// StoragePaths is where a data dir's pebble DB and its WAL are, for the
// offline tools (metastoreutl) that open a stopped member's DB or write a
// new one.
type StoragePaths struct {
	DB  string // <data-dir>/member/pebble
	WAL string // absolute; "": inside DB
}

// ExistingDataDir finds the DB and WAL of a stopped member's data dir, with
// the refusals a start makes (an etcd data dir, a newer format, a WAL dir
// that does not hold this data dir's WAL marker), so that a tool never
// opens the DB without the WAL the data dir records. A data dir without a
// DB is an error (os.ErrNotExist, from stat of the DB dir).
func ExistingDataDir(dataDir string) (StoragePaths, error) {
	fs := vfs.Default
	rec, _, err := readJSON[formatRecord](fs, fs.PathJoin(dataDir, "member", recordName))
	if err != nil {
		return StoragePaths{}, err
	}
	l, err := inspectDataDir(fs, dataDir, rec.WALDir)
	if err != nil {
		return StoragePaths{}, err
	}
	if _, err := fs.Stat(l.dbDir); err != nil {
		return StoragePaths{}, err
	}
	return StoragePaths{DB: l.dbDir, WAL: l.walDir}, nil
}

// NewDataDir lays out a new member's data dir, whose DB the caller then
// writes at DB, with its WAL in WAL (walDir, made absolute; "" keeps it
// in the DB dir): it writes durably the format record and, with walDir,
// the WAL dir and its marker, as a member's first start does. dataDir
// must not hold a member yet.
func NewDataDir(dataDir, walDir string) (StoragePaths, error) {
	l, err := inspectDataDir(vfs.Default, dataDir, walDir)
	if err != nil {
		return StoragePaths{}, err
	}
	if err := l.prepare(vfs.Default); err != nil {
		return StoragePaths{}, err
	}
	return StoragePaths{DB: l.dbDir, WAL: l.walDir}, nil
}

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/spf13/pflag"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/server/v3/lease/leasepb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/etcdbackend"
	"github.com/metastore/metastore/storeactor"
)

func snapshotExportCommand() *command {
	var toEtcd bool
	return &command{
		path:  "snapshot export",
		use:   "snapshot export --to-etcd <snapshot file | stopped data dir> <output file> [flags]",
		short: "Exports a MetaStore snapshot or stopped data directory as an etcd snapshot file",
		long: `Writes the store of a MetaStore snapshot ('etcdctl snapshot save' against
MetaStore) or of a stopped member's data directory as an etcd v3.7 snapshot
file: etcd's backend (bbolt) followed by its SHA-256, as 'etcdctl snapshot
save' writes it. 'etcdutl snapshot restore' accepts it, and etcd started on the
result serves the same keys at the same revisions, with the same compaction,
leases and attached keys, users, roles and auth state. Alarms and the
membership are not exported ('etcdutl snapshot restore' writes the new
cluster's). The output file must not exist; it is written as <output>.part
and renamed once complete.
`,
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&toEtcd, "to-etcd", false, "Write an etcd v3.7 snapshot file (required: the only format export writes)")
		},
		run: func(c *cli, args []string) int {
			if len(args) != 2 {
				return c.fail(exitBadArgs, errors.New("snapshot export requires exactly two arguments: the snapshot file or data dir, and the output file"))
			}
			if !toEtcd {
				return c.fail(exitBadArgs, errors.New("--to-etcd is required: it is the only format snapshot export writes"))
			}
			lg := newLogger(c.stderr)
			defer lg.Sync()
			sum, err := exportToEtcd(lg, newProgressBar(c.stderr), args[0], args[1])
			if err != nil {
				return c.fail(exitError, err)
			}
			sum.print(c.stdout)
			return exitSuccess
		},
	}
}

type exportSummary struct {
	out              string
	rev, compactRev  int64
	versions, leases int64
	users, roles     int
	authEnabled      bool
	took             time.Duration
}

func (s exportSummary) print(w io.Writer) {
	auth := "off"
	if s.authEnabled {
		auth = "on"
	}
	fmt.Fprintf(w, "Exported %d versions, %d leases, %d users, %d roles (auth %s) at revision %d (compacted at %d) to %s in %v\n",
		s.versions, s.leases, s.users, s.roles, auth, s.rev, s.compactRev, s.out, s.took.Round(time.Millisecond))
}

func exportToEtcd(lg *zap.Logger, bar *progressBar, src, out string) (exportSummary, error) {
	start := time.Now()
	sum := exportSummary{out: out}
	if _, err := os.Stat(out); err == nil {
		return sum, fmt.Errorf("%s already exists", out)
	}
	db, closeDB, err := openStoreSource(src)
	if err != nil {
		return sum, err
	}
	defer closeDB()
	st, err := storeactor.ReadExportState(db)
	if err != nil {
		return sum, err
	}
	sum.rev, sum.compactRev, sum.authEnabled = st.View.Rev, st.View.CompactRev, st.AuthEnabled
	sum.users, sum.roles = len(st.Users), len(st.Roles)
	lg.Info("exporting to an etcd snapshot", zap.String("path", src), zap.String("output", out),
		zap.Int64("revision", st.View.Rev), zap.Int64("compact-revision", st.View.CompactRev))

	part := out + ".part"
	if err := os.Remove(part); err != nil && !errors.Is(err, os.ErrNotExist) {
		return sum, err
	}
	w, err := etcdbackend.Create(part)
	if err != nil {
		return sum, err
	}
	err = writeEtcdBackend(w, db, st, bar, &sum)
	if err != nil {
		w.Abort()
	} else {
		err = w.Close()
	}
	if err == nil {
		err = etcdbackend.AppendChecksum(part)
	}
	if err == nil {
		err = os.Rename(part, out)
	}
	if err == nil {
		err = syncPath(filepath.Dir(filepath.Clean(out)))
	}
	if err != nil {
		_ = os.Remove(part)
		return sum, err
	}
	sum.took = time.Since(start)
	lg.Info("exported to an etcd snapshot", zap.String("output", out), zap.Int64("revision", sum.rev),
		zap.Int64("versions", sum.versions), zap.Int64("leases", sum.leases), zap.Duration("took", sum.took))
	return sum, nil
}

// writeEtcdBackend writes the store's versions, leases, auth records and
// meta into w.
func writeEtcdBackend(w *etcdbackend.Writer, db pebble.Reader, st storeactor.ExportState, bar *progressBar, sum *exportSummary) error {
	bar.start("exporting versions", "versions")
	err := storeactor.ExportVersions(db, func(kv *mvccpb.KeyValue, sub int64, tombstone bool) error {
		if sum.versions++; sum.versions%1024 == 0 {
			bar.set(sum.versions, 0)
		}
		return w.PutVersion(kv.ModRevision, sub, tombstone, kv)
	})
	bar.done()
	if err != nil {
		return err
	}
	for _, l := range st.Leases {
		if err := w.PutLease(&leasepb.Lease{ID: l.ID, TTL: l.TTL, RemainingTTL: l.Remaining}); err != nil {
			return err
		}
		sum.leases++
	}
	for _, u := range st.Users {
		if err := w.PutUser(u); err != nil {
			return err
		}
	}
	for _, r := range st.Roles {
		if err := w.PutRole(r); err != nil {
			return err
		}
	}
	return w.SetMeta(etcdbackend.Meta{
		ConsistentIndex:  st.View.Applied,
		Term:             st.View.AppliedTerm,
		ScheduledCompact: st.View.CompactRev,
		FinishedCompact:  st.View.CompactDone,
		StorageVersion:   etcdbackend.StorageVersion,
		AuthEnabled:      st.AuthEnabled,
		AuthRevision:     st.AuthRev,
	})
}

// openStoreSource opens, read-only, the DB of a stopped member's data dir
// (a running member's lock is refused) or of a snapshot file, unpacked
// and checked into a temporary dir that closing removes.
func openStoreSource(src string) (*pebble.DB, func(), error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, nil, err
	}
	opts := storeactor.PebbleOptions()
	opts.ReadOnly, opts.ErrorIfNotExists = true, true
	if st.IsDir() {
		dbDir := filepath.Join(src, "member", "pebble")
		if _, err := os.Stat(dbDir); err != nil {
			return nil, nil, fmt.Errorf("%s is not a MetaStore data dir: %w", src, err)
		}
		if opts.WALDir, err = recordedWALDir(src); err != nil {
			return nil, nil, err
		}
		db, err := pebble.Open(dbDir, opts)
		if err != nil {
			if isLockErr(err) {
				return nil, nil, fmt.Errorf("database is in use (lock held by another process; stop the member first): %w", err)
			}
			return nil, nil, err
		}
		return db, func() { db.Close() }, nil
	}
	s, err := openSnapshot(src, false)
	if err != nil {
		return nil, nil, err
	}
	defer s.Close()
	tmp, err := os.MkdirTemp("", "metastoreutl-export-")
	if err != nil {
		return nil, nil, err
	}
	dir := filepath.Join(tmp, "db")
	if err := s.unpack(dir, true, nil); err != nil {
		os.RemoveAll(tmp)
		return nil, nil, err
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, nil, fmt.Errorf("%s: cannot open the database: %w", errIntegrity, err)
	}
	return db, func() { db.Close(); os.RemoveAll(tmp) }, nil
}

// recordedWALDir is the WAL dir a data dir's format record names (node's
// <data-dir>/member/metastore.json), "" when the WAL is inside the DB.
func recordedWALDir(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "member", "metastore.json"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var rec struct {
		WALDir string `json:"wal-dir"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return "", fmt.Errorf("%s/member/metastore.json: %w", dataDir, err)
	}
	return rec.WALDir, nil
}

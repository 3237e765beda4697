package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/metastore/metastore/node"
	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/storeactor"
)

type restoreFlags struct {
	dataDir, walDir, cluster, token, peerURLs, name string
	skipHashCheck, markCompacted                    bool
	mmapSize, bumpRevision                          uint64
}

func snapshotRestoreCommand() *command {
	f := &restoreFlags{}
	return &command{
		path:  "snapshot restore",
		use:   "snapshot restore <filename> --data-dir {output dir} [options]",
		short: "Restores a MetaStore member snapshot to a MetaStore data directory",
		long: `Restores a snapshot (from 'etcdctl snapshot save' against MetaStore) into a new
data directory, as the data of the first member of a new cluster: the store
(keys and their history, leases and their keys, users, roles and whether auth
is enabled, alarms) is kept; the raft log and the old identity are dropped, and
the member and cluster ids are those a new member gets from --name,
--initial-cluster, --initial-advertise-peer-urls and --initial-cluster-token.
The data goes to <data-dir>/member/pebble, its WAL to --wal-dir if given; the
data directory must not exist or be empty, the WAL directory must not exist.
Start the member with the same --name, --data-dir and --wal-dir.
`,
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&f.dataDir, "data-dir", "", "Path to the output data directory")
			fs.StringVar(&f.walDir, "wal-dir", "", "Path to the WAL directory (use --data-dir if none given)")
			fs.StringVar(&f.cluster, "initial-cluster", "default=http://localhost:2380", "Initial cluster configuration for restore bootstrap")
			fs.StringVar(&f.token, "initial-cluster-token", "etcd-cluster", "Initial cluster token for the etcd cluster during restore bootstrap")
			fs.StringVar(&f.peerURLs, "initial-advertise-peer-urls", "http://localhost:2380", "List of this member's peer URLs to advertise to the rest of the cluster")
			fs.StringVar(&f.name, "name", "default", "Human-readable name for this member")
			fs.BoolVar(&f.skipHashCheck, "skip-hash-check", false, "Ignore snapshot integrity hash value (required if copied from data directory)")
			fs.Uint64Var(&f.mmapSize, "initial-memory-map-size", 0, "Accepted as etcdutl's; no effect (MetaStore does not map its database into memory)")
			fs.Uint64Var(&f.bumpRevision, "bump-revision", 0, "How much to increase the latest revision after restore")
			fs.BoolVar(&f.markCompacted, "mark-compacted", false, "Mark the latest revision after restore as the point of scheduled compaction (required if --bump-revision > 0, disallowed otherwise)")
		},
		setup: func(cc *cobra.Command) {
			_ = cc.MarkFlagDirname("data-dir")
			_ = cc.MarkFlagDirname("wal-dir")
		},
		run: func(c *cli, args []string) int { return snapshotRestore(c, f, args) },
	}
}

func snapshotRestore(c *cli, f *restoreFlags, args []string) int {
	if len(args) != 1 {
		return c.fail(exitBadArgs, errors.New("snapshot restore requires exactly one argument"))
	}
	if (f.bumpRevision == 0) == f.markCompacted {
		return c.fail(exitBadArgs, errors.New("--mark-compacted required if --revision-bump > 0"))
	}
	if f.bumpRevision > math.MaxInt64 {
		return c.fail(exitBadArgs, fmt.Errorf("--bump-revision %d is larger than a revision can be", f.bumpRevision))
	}
	lg := newLogger(c.stderr)
	defer lg.Sync()
	if err := restore(lg, f, args[0]); err != nil {
		return c.fail(exitError, err)
	}
	return exitSuccess
}

// restore does what etcdutl's does, in its order and with its log lines
// and errors: check the cluster flags and the output directories, check
// and copy the snapshot, bump the revision, record the new membership.
// A failure leaves nothing behind: neither the data dir (or what it
// held, when it existed empty) nor the WAL dir.
func restore(lg *zap.Logger, f *restoreFlags, file string) error {
	id, err := restoreIdentity(f)
	if err != nil {
		return err
	}
	dataDir := f.dataDir
	if dataDir == "" {
		dataDir = f.name + ".metastore"
	}
	existed, err := checkDataDir(dataDir)
	if err != nil {
		return err
	}
	if f.walDir != "" {
		if _, err := os.Stat(f.walDir); err == nil {
			return fmt.Errorf("wal-dir %q exists", f.walDir)
		}
	}
	dbDir := filepath.Join(dataDir, "member", "pebble")
	walDir := cmp.Or(f.walDir, dbDir)
	lg.Info("restoring snapshot", zap.String("path", file), zap.String("wal-dir", walDir),
		zap.String("data-dir", dataDir), zap.String("pebble-dir", dbDir))

	s, err := openSnapshot(file, true)
	if err != nil {
		return err
	}
	defer s.Close()
	if s.checksum == nil && !f.skipHashCheck {
		return errors.New("snapshot missing hash but --skip-hash-check=false")
	}
	cleanup := func() {
		if existed {
			_ = os.RemoveAll(filepath.Join(dataDir, "member"))
		} else {
			_ = os.RemoveAll(dataDir)
		}
		if f.walDir != "" {
			_ = os.RemoveAll(f.walDir)
		}
	}
	paths, err := node.NewDataDir(dataDir, f.walDir)
	if err != nil {
		cleanup()
		return err
	}
	progress := func(read, total int64) {
		lg.Info("restoring snapshot: unpacking", zap.Int64("read-bytes", read), zap.Int64("total-bytes", total),
			zap.String("progress", fmt.Sprintf("%.1f%%", 100*float64(read)/float64(max(total, 1)))))
	}
	if err := s.unpack(paths.DB, !f.skipHashCheck, progress); err != nil {
		cleanup()
		return err
	}
	v, err := rewriteRestored(lg, paths, id, int64(f.bumpRevision))
	if err != nil {
		cleanup()
		return err
	}
	lg.Info("restored snapshot", zap.String("path", file), zap.String("wal-dir", walDir),
		zap.String("data-dir", dataDir), zap.String("pebble-dir", dbDir), zap.String("name", f.name),
		zap.String("member-id", fmt.Sprintf("%x", id.MemberID)), zap.String("cluster-id", fmt.Sprintf("%x", id.ClusterID)),
		zap.Int64("revision", v.Rev), zap.Uint64("raft-index", v.Applied), zap.Uint64("raft-term", v.AppliedTerm))
	return nil
}

// restoreIdentity checks the cluster flags as etcdutl does (etcd's URL
// parsing and its errors) and computes the new member's identity.
func restoreIdentity(f *restoreFlags) (node.Identity, error) {
	peerURLs, err := types.NewURLs(strings.Split(f.peerURLs, ","))
	if err != nil {
		return node.Identity{}, err
	}
	urlsMap, err := types.NewURLsMap(f.cluster)
	if err != nil {
		return node.Identity{}, err
	}
	cluster := make(map[string][]string, len(urlsMap))
	for name, urls := range urlsMap {
		cluster[name] = urls.StringSlice()
	}
	return node.NewIdentity(f.name, cluster, peerURLs.StringSlice(), f.token)
}

// checkDataDir refuses a data dir that exists and is not empty (etcdutl's
// message), and reports whether it exists.
func checkDataDir(dir string) (bool, error) {
	st, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	notEmpty := fmt.Errorf("data-dir %q not empty or could not be read", dir)
	if err != nil || !st.IsDir() {
		return false, notEmpty
	}
	d, err := os.Open(dir)
	if err != nil {
		return false, notEmpty
	}
	defer d.Close()
	if names, err := d.Readdirnames(1); !errors.Is(err, io.EOF) || len(names) > 0 {
		return false, notEmpty
	}
	return true, nil
}

// rewriteRestored turns the unpacked DB into a new member's, in one
// batch: the store is kept, its revision bumped by bump (when > 0, see
// storeactor.BumpRevision); the raft state starts after the store's
// applied index with the new cluster's voters
// (raftactor.WriteRestoredState); identity and members are the new ones.
// With a WAL dir, pebble moves its WAL there (the archive's is replayed
// from the DB dir). It returns the store's new state.
func rewriteRestored(lg *zap.Logger, p node.StoragePaths, id node.Identity, bump int64) (storeactor.View, error) {
	opts := storeactor.PebbleOptions()
	opts.ErrorIfNotExists = true
	if p.WAL != "" {
		opts.WALDir = p.WAL
		opts.WALRecoveryDirs = []wal.Dir{{FS: vfs.Default, Dirname: p.DB}}
	}
	db, err := pebble.Open(p.DB, opts)
	if err != nil {
		return storeactor.View{}, fmt.Errorf("%s: cannot open the database: %w", errIntegrity, err)
	}
	v, err := writeRestored(lg, db, id, bump)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return v, err
}

func writeRestored(lg *zap.Logger, db *pebble.DB, id node.Identity, bump int64) (storeactor.View, error) {
	r, err := storeactor.NewReader(db)
	if err != nil {
		return storeactor.View{}, err
	}
	v := *r.View()
	b := db.NewBatch()
	defer b.Close()
	if bump > 0 {
		before := v.Rev
		if v, err = storeactor.BumpRevision(b, v, bump); err != nil {
			return v, err
		}
		lg.Info("bumping latest revision", zap.Int64("latest-revision", before),
			zap.Int64("bump-amount", bump), zap.Int64("new-latest-revision", v.Rev))
		lg.Info("marking revision compacted", zap.Int64("revision", v.CompactRev))
	}
	if err := raftactor.WriteRestoredState(b, v.Applied, v.AppliedTerm, id.Voters); err != nil {
		return v, err
	}
	if err := node.WriteIdentity(b, id); err != nil {
		return v, err
	}
	if err := storeactor.WriteMembers(b, id.Members); err != nil {
		return v, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return v, err
	}
	for _, m := range id.Members {
		lg.Info("added member", zap.String("cluster-id", fmt.Sprintf("%x", id.ClusterID)),
			zap.String("local-member-id", "0"), zap.String("added-peer-id", fmt.Sprintf("%x", m.ID)),
			zap.Strings("added-peer-peer-urls", m.PeerURLs), zap.Bool("added-peer-is-learner", m.IsLearner))
	}
	// Drop the old log's tables now rather than at some later compaction.
	return v, db.Compact(context.Background(), []byte{'r'}, []byte{'r' + 1}, false)
}

// newLogger logs as etcdutl does: zap's console encoding, RFC 3339 times,
// to stderr.
func newLogger(w io.Writer) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.RFC3339TimeEncoder
	enc.EncodeDuration = zapcore.StringDurationEncoder
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(w), zapcore.InfoLevel)
	return zap.New(core, zap.AddCaller())
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/cockroachdb/pebble/v2"
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
		use:   "snapshot restore <filename> --data-dir {output dir} [options] [flags]",
		short: "Restores a MetaStore member snapshot to a MetaStore data directory",
		long: `Restores a snapshot (from 'etcdctl snapshot save' against MetaStore) into a new
data directory, as the data of the first member of a new cluster: the store
(keys and their history, leases and their keys, users, roles and whether auth
is enabled, alarms) is kept; the raft log and the old identity are dropped, and
the member and cluster ids are those a new member gets from --name,
--initial-cluster, --initial-advertise-peer-urls and --initial-cluster-token.
The data goes to <data-dir>/member/pebble; the directory must not exist or be
empty. Start the member with the same --name and --data-dir.
`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&f.dataDir, "data-dir", "", "Path to the output data directory (default ${name}.metastore)")
			fs.StringVar(&f.walDir, "wal-dir", "", "Not supported: MetaStore keeps its raft log in the data directory")
			fs.StringVar(&f.cluster, "initial-cluster", "", "Initial cluster configuration for restore bootstrap (default ${name}=${initial-advertise-peer-urls})")
			fs.StringVar(&f.token, "initial-cluster-token", "etcd-cluster", "Initial cluster token for the etcd cluster during restore bootstrap")
			fs.StringVar(&f.peerURLs, "initial-advertise-peer-urls", "http://localhost:2380", "List of this member's peer URLs to advertise to the rest of the cluster")
			fs.StringVar(&f.name, "name", "default", "Human-readable name for this member")
			fs.BoolVar(&f.skipHashCheck, "skip-hash-check", false, "Ignore snapshot integrity hash value (required if copied from data directory)")
			fs.Uint64Var(&f.mmapSize, "initial-memory-map-size", 0, "Accepted for etcdutl compatibility; no effect (MetaStore does not map its database)")
			fs.Uint64Var(&f.bumpRevision, "bump-revision", 0, "Not supported yet: how much to increase the latest revision after restore")
			fs.BoolVar(&f.markCompacted, "mark-compacted", false, "Not supported yet: mark the latest revision after restore as the point of scheduled compaction")
		},
		run: func(c *cli, args []string) int { return snapshotRestore(c, f, args) },
	}
}

func snapshotRestore(c *cli, f *restoreFlags, args []string) int {
	if len(args) != 1 {
		return c.fail(exitBadArgs, errors.New("snapshot restore requires exactly one argument"))
	}
	if (f.bumpRevision == 0 && f.markCompacted) || (f.bumpRevision > 0 && !f.markCompacted) {
		return c.fail(exitBadArgs, errors.New("--mark-compacted required if --revision-bump > 0"))
	}
	if f.bumpRevision > 0 {
		return c.fail(exitError, errors.New("--bump-revision and --mark-compacted are not supported yet"))
	}
	if f.walDir != "" {
		return c.fail(exitError, errors.New("--wal-dir is not supported: MetaStore keeps its raft log in the data directory's database"))
	}
	lg := newLogger(c.stderr)
	defer lg.Sync()
	if err := restore(lg, f, args[0]); err != nil {
		return c.fail(exitError, err)
	}
	return exitSuccess
}

func restore(lg *zap.Logger, f *restoreFlags, file string) error {
	peerURLs := splitList(f.peerURLs)
	if len(peerURLs) == 0 {
		return errors.New("--initial-advertise-peer-urls is empty")
	}
	clusterFlag := f.cluster
	if clusterFlag == "" {
		clusterFlag = f.name + "=" + strings.Join(peerURLs, ",")
	}
	cluster, err := node.ParseInitialCluster(clusterFlag)
	if err != nil {
		return err
	}
	id, err := node.NewIdentity(f.name, cluster, peerURLs, f.token)
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

	st, err := os.Stat(file)
	if err != nil {
		return err
	}
	if !hasChecksum(st.Size()) && !f.skipHashCheck {
		return errors.New("snapshot missing hash but --skip-hash-check=false")
	}
	s, err := openSnapshot(file, true)
	if err != nil {
		return err
	}
	defer s.Close()

	dbDir := filepath.Join(dataDir, "member", "pebble")
	lg.Info("restoring snapshot", zap.String("path", file), zap.String("data-dir", dataDir),
		zap.String("pebble-dir", dbDir), zap.Int64("size", s.size), zap.Bool("skip-hash-check", f.skipHashCheck))
	cleanup := func() {
		if existed {
			_ = os.RemoveAll(filepath.Join(dataDir, "member"))
		} else {
			_ = os.RemoveAll(dataDir)
		}
	}
	progress := func(read, total int64) {
		lg.Info("restoring snapshot: unpacking", zap.Int64("read-bytes", read), zap.Int64("total-bytes", total),
			zap.String("progress", fmt.Sprintf("%.1f%%", 100*float64(read)/float64(max(total, 1)))))
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	if err := s.unpack(dbDir, !f.skipHashCheck, progress); err != nil {
		cleanup()
		return err
	}
	rs, err := rewriteRestored(dbDir, id)
	if err != nil {
		cleanup()
		return err
	}
	lg.Info("restored snapshot", zap.String("path", file), zap.String("data-dir", dataDir),
		zap.String("name", f.name),
		zap.String("member-id", fmt.Sprintf("%x", id.MemberID)), zap.String("cluster-id", fmt.Sprintf("%x", id.ClusterID)),
		zap.Int64("revision", rs.Rev), zap.Uint64("raft-index", rs.Applied), zap.Uint64("raft-term", rs.AppliedTerm))
	return nil
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

// rewriteRestored turns the unpacked DB into a new member's: the store is
// kept as it is; the raft state starts after the store's applied index
// with the new cluster's voters (raftactor.WriteRestoredState), and the
// identity is the new one. It returns the store's state.
func rewriteRestored(dir string, id node.Identity) (storeactor.View, error) {
	opts := storeactor.PebbleOptions()
	opts.ErrorIfNotExists = true
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return storeactor.View{}, fmt.Errorf("%s: cannot open the database: %w", errIntegrity, err)
	}
	v, err := writeRestored(db, id)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return v, err
}

func writeRestored(db *pebble.DB, id node.Identity) (storeactor.View, error) {
	r, err := storeactor.NewReader(db)
	if err != nil {
		return storeactor.View{}, err
	}
	v := *r.View()
	b := db.NewBatch()
	defer b.Close()
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
	// Drop the old log's tables now rather than at some later compaction.
	return v, db.Compact(context.Background(), []byte{'r'}, []byte{'r' + 1}, false)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
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

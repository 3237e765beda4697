package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/spf13/pflag"
	"go.etcd.io/etcd/api/v3/authpb"
	"go.etcd.io/etcd/server/v3/lease/leasepb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/etcdbackend"
	"github.com/metastore/metastore/node"
	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/storeactor"
)

func migrateFromEtcdCommand() *command {
	f := &restoreFlags{}
	return &command{
		path:  "migrate from-etcd",
		use:   "migrate from-etcd <etcd snapshot file | stopped etcd data dir> --data-dir {output dir} [options] [flags]",
		short: "Migrates etcd's data, with every revision, into a new MetaStore data directory",
		long: `Migrates an etcd v3 snapshot ('etcdctl snapshot save') or the data directory
of a stopped etcd member into a new MetaStore data directory, as the data of
the first member of a new cluster (as 'snapshot restore' does for MetaStore's
own snapshots). Carried over exactly: every version of every key etcd still
holds (create and mod revision, version, value, lease), deletions, the current
and the compacted revision, leases (id, TTL, attached keys), users, roles and
their permissions, whether auth is enabled and the auth revision. Alarms are
cleared; the membership and ids are the new cluster's, from --name,
--initial-cluster, --initial-advertise-peer-urls and --initial-cluster-token.
Leases start with their whole TTL, as etcd's do after a restore, unless etcd
persisted a checkpoint of their remaining TTL (--feature-gates=LeaseCheckpoint=true):
then, as in etcd, with that remaining TTL.

A snapshot file's SHA-256 is checked as etcdutl checks it. The output is
written to a temporary directory beside --data-dir and renamed into place
only once complete; the directory must not exist or be empty. Start the member
with the same --name and --data-dir.
`,
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&f.dataDir, "data-dir", "", "Path to the output data directory (default ${name}.metastore)")
			fs.StringVar(&f.cluster, "initial-cluster", "", "Initial cluster configuration for the new cluster (default ${name}=${initial-advertise-peer-urls})")
			fs.StringVar(&f.token, "initial-cluster-token", "etcd-cluster", "Initial cluster token for the new cluster")
			fs.StringVar(&f.peerURLs, "initial-advertise-peer-urls", "http://localhost:2380", "List of this member's peer URLs to advertise to the rest of the cluster")
			fs.StringVar(&f.name, "name", "default", "Human-readable name for this member")
			fs.BoolVar(&f.skipHashCheck, "skip-hash-check", false, "Ignore snapshot integrity hash value (required if copied from data directory)")
		},
		run: func(c *cli, args []string) int { return migrateFromEtcd(c, f, args) },
	}
}

func migrateFromEtcd(c *cli, f *restoreFlags, args []string) int {
	if len(args) != 1 {
		return c.fail(exitBadArgs, errors.New("migrate from-etcd requires exactly one argument"))
	}
	lg := newLogger(c.stderr)
	defer lg.Sync()
	// An interrupted migration removes what it wrote.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := migrate(ctx, lg, newProgressBar(c.stderr), f, args[0])
	if err != nil {
		return c.fail(exitError, err)
	}
	sum.print(c.stdout)
	return exitSuccess
}

// migrateIdentity is the new member's identity from the restore flags;
// without --initial-cluster, a one-member cluster of this member.
func migrateIdentity(f *restoreFlags) (node.Identity, error) {
	g := *f
	if g.cluster == "" {
		g.cluster = g.name + "=" + g.peerURLs
	}
	return restoreIdentity(&g)
}

// migrateSummary is what a migration reports at its end.
type migrateSummary struct {
	source, dataDir string
	name            string
	id              node.Identity
	stats           storeactor.ImportStats
	state           storeactor.ImportState
	took            time.Duration
}

func (s migrateSummary) print(w io.Writer) {
	auth := "disabled"
	if s.state.AuthEnabled {
		auth = "enabled"
	}
	compacted := "never compacted"
	if s.state.CompactRev >= 0 {
		compacted = fmt.Sprintf("compacted at %d", s.state.CompactRev)
	}
	fmt.Fprintf(w, "Migrated %s to %s in %v\n", s.source, s.dataDir, s.took.Round(time.Millisecond))
	fmt.Fprintf(w, "  revision:  %d (%s)\n", s.state.Rev, compacted)
	fmt.Fprintf(w, "  keys:      %d live, %d versions (%d deletions)\n", s.stats.Keys, s.stats.Versions, s.stats.Tombstones)
	checkpointed := ""
	if s.stats.Checkpointed > 0 {
		checkpointed = fmt.Sprintf(" (%d with a checkpointed remaining TTL)", s.stats.Checkpointed)
	}
	fmt.Fprintf(w, "  leases:    %d%s, %d keys attached\n", s.stats.Leases, checkpointed, s.stats.Attached)
	fmt.Fprintf(w, "  auth:      %s (auth revision %d), %d users, %d roles\n", auth, max(s.state.AuthRev, 1), s.stats.Users, s.stats.Roles)
	fmt.Fprintf(w, "  alarms:    cleared\n")
	fmt.Fprintf(w, "  member:    %s, id %x, cluster id %x\n", s.name, s.id.MemberID, s.id.ClusterID)
}

func migrate(ctx context.Context, lg *zap.Logger, bar *progressBar, f *restoreFlags, src string) (migrateSummary, error) {
	start := time.Now()
	sum := migrateSummary{source: src, name: f.name}
	var err error
	if sum.id, err = migrateIdentity(f); err != nil {
		return sum, err
	}
	sum.dataDir = f.dataDir
	if sum.dataDir == "" {
		sum.dataDir = f.name + ".metastore"
	}
	existed, err := checkDataDir(sum.dataDir)
	if err != nil {
		return sum, err
	}
	b, verified, err := openEtcdSource(src, f.skipHashCheck)
	if err != nil {
		return sum, err
	}
	defer b.Close()
	meta, err := b.Meta()
	if err != nil {
		return sum, errors.Join(verified(), err)
	}
	if st, err := os.Stat(src); err == nil && st.IsDir() {
		if err := checkEtcdWAL(lg, src, meta.ConsistentIndex); err != nil {
			return sum, err
		}
	}
	lg.Info("migrating etcd data", zap.String("path", src), zap.String("data-dir", sum.dataDir),
		zap.String("storage-version", meta.StorageVersion), zap.Uint64("consistent-index", meta.ConsistentIndex),
		zap.Int64("scheduled-compact-revision", meta.ScheduledCompact), zap.Int64("finished-compact-revision", meta.FinishedCompact))

	tmp, err := os.MkdirTemp(filepath.Dir(filepath.Clean(sum.dataDir)), "."+filepath.Base(sum.dataDir)+".migrating-")
	if err != nil {
		return sum, errors.Join(verified(), err)
	}
	// Whatever happens, the temporary dir goes: once the member dir is
	// renamed out of it, it is empty.
	defer os.RemoveAll(tmp)
	member := filepath.Join(tmp, "member")
	dbDir := filepath.Join(member, "pebble")
	err = os.Mkdir(member, 0o700)
	if err == nil {
		err = writeSynced(filepath.Join(member, node.MigratingMarker))
	}
	if err == nil {
		sum.stats, sum.state, err = importEtcd(ctx, lg, bar, b, meta, dbDir, sum.id)
	}
	// A damaged file is reported as such, whatever the import made of it.
	if verr := verified(); verr != nil {
		return sum, verr
	}
	if err != nil {
		return sum, err
	}
	if err := installMember(member, sum.dataDir, existed); err != nil {
		return sum, err
	}
	sum.took = time.Since(start)
	lg.Info("migrated etcd data", zap.String("path", src), zap.String("data-dir", sum.dataDir),
		zap.String("name", f.name), zap.String("member-id", fmt.Sprintf("%x", sum.id.MemberID)),
		zap.String("cluster-id", fmt.Sprintf("%x", sum.id.ClusterID)),
		zap.Int64("revision", sum.state.Rev), zap.Int64("compact-revision", sum.state.CompactRev),
		zap.Int64("keys", sum.stats.Keys), zap.Int64("versions", sum.stats.Versions),
		zap.Int64("leases", sum.stats.Leases), zap.Int64("checkpointed-leases", sum.stats.Checkpointed),
		zap.Int64("users", sum.stats.Users), zap.Int64("roles", sum.stats.Roles),
		zap.Duration("took", sum.took))
	return sum, nil
}

// openEtcdSource opens the backend of an etcd snapshot file or of a
// stopped member's data dir (which has no checksum; a running member's
// lock is refused). A snapshot file's checksum is checked as etcdutl
// checks it, while the caller reads the backend (both read the file from
// beginning to end: on two cores, side by side); verified waits for the
// outcome, which the caller must have before it trusts what it read.
func openEtcdSource(src string, skipHashCheck bool) (b *etcdbackend.Backend, verified func() error, err error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, nil, err
	}
	if st.IsDir() {
		db := filepath.Join(src, "member", "snap", "db")
		if _, err := os.Stat(db); err != nil {
			return nil, nil, fmt.Errorf("%s is not an etcd data dir: %w", src, err)
		}
		b, err := etcdbackend.Open(db, time.Second)
		return b, func() error { return nil }, err
	}
	done := make(chan error, 1)
	go func() { done <- etcdbackend.VerifySnapshot(src, skipHashCheck, nil) }()
	var verr error
	var waited bool
	verified = func() error {
		if !waited {
			verr, waited = <-done, true
		}
		return verr
	}
	b, err = etcdbackend.Open(src, time.Second)
	if err != nil {
		if verr := verified(); verr != nil {
			return nil, nil, verr
		}
		if errors.Is(err, etcdbackend.ErrCorrupt) && isTarArchive(src) {
			return nil, nil, fmt.Errorf("%s is a MetaStore snapshot, not etcd's: use 'metastoreutl snapshot restore'", src)
		}
		return nil, nil, err
	}
	return b, verified, nil
}

// isTarArchive reports whether the file starts with a USTAR header, as
// MetaStore's snapshots do (storeactor/snapshot.go).
func isTarArchive(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	magic := make([]byte, 5)
	_, err = f.ReadAt(magic, 257)
	return err == nil && string(magic) == "ustar"
}

// importEtcd copies the backend's state into a new store DB in dbDir and
// returns what it wrote and the store state it recorded.
func importEtcd(ctx context.Context, lg *zap.Logger, bar *progressBar, b *etcdbackend.Backend, meta etcdbackend.Meta, dbDir string, id node.Identity) (storeactor.ImportStats, storeactor.ImportState, error) {
	st := storeactor.ImportState{
		CompactRev:  meta.CompactRevision(),
		CompactDone: meta.FinishedCompact,
		// A new cluster's raft log starts after this; etcd's own index
		// and term keep `endpoint status` familiar.
		Applied:     max(meta.ConsistentIndex, 1),
		AppliedTerm: max(meta.Term, 1),
		AuthEnabled: meta.AuthEnabled,
		AuthRev:     meta.AuthRevision,
	}
	first, last, err := b.RevisionSpan()
	if err != nil {
		return storeactor.ImportStats{}, st, err
	}
	st.Rev = meta.CurrentRevision(last)
	// Versions below the finished compaction are the newest of their keys
	// that it kept: history (watch events) starts there, as it does in a
	// store that compacted there itself.
	im, err := storeactor.NewImporter(dbDir, max(meta.FinishedCompact, 0))
	if err != nil {
		return storeactor.ImportStats{}, st, err
	}
	// The new cluster's raft state (starting after the store's applied
	// index), identity and members: what a restore writes.
	newMember := func(b *pebble.Batch) error {
		if err := raftactor.WriteRestoredState(b, st.Applied, st.AppliedTerm, id.Voters); err != nil {
			return err
		}
		if err := node.WriteIdentity(b, id); err != nil {
			return err
		}
		return storeactor.WriteMembers(b, id.Members)
	}
	stats, err := copyEtcd(ctx, lg, bar, b, im, st, first, last, newMember)
	return stats, st, errors.Join(err, im.Close())
}

func copyEtcd(ctx context.Context, lg *zap.Logger, bar *progressBar, b *etcdbackend.Backend, im *storeactor.Importer,
	st storeactor.ImportState, first, last int64, newMember func(*pebble.Batch) error) (storeactor.ImportStats, error) {
	if err := b.Leases(func(l *leasepb.Lease) error {
		return im.AddLease(l.ID, l.TTL, l.RemainingTTL)
	}); err != nil {
		return storeactor.ImportStats{}, err
	}
	if err := b.Users(func(u *authpb.User) error { return im.AddUser(u) }); err != nil {
		return storeactor.ImportStats{}, err
	}
	if err := b.Roles(func(r *authpb.Role) error { return im.AddRole(r) }); err != nil {
		return storeactor.ImportStats{}, err
	}
	bar.start("copying versions", "revisions")
	var versions int64
	err := b.Versions(func(v *etcdbackend.Version) error {
		if versions++; versions%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			bar.set(v.Main-first+1, last-first+1)
		}
		return im.AddVersion(v.KV, v.Sub, v.Tombstone)
	})
	bar.set(last-first+1, last-first+1)
	bar.done()
	if err != nil {
		return storeactor.ImportStats{}, err
	}
	bar.start("indexing keys", "keys")
	stats, err := im.Finish(st, func(keys int64) { bar.set(keys, 0) }, newMember)
	bar.done()
	if err == nil && stats.Unattached > 0 {
		lg.Warn("keys name a lease that does not exist; left unattached, as etcd leaves them", zap.Int64("keys", stats.Unattached))
	}
	return stats, err
}

// installMember moves the complete member dir into dataDir (made if it did
// not exist): its migration marker is removed first, durably, then the dir
// is renamed into place and the rename synced.
func installMember(member, dataDir string, existed bool) error {
	if err := os.Remove(filepath.Join(member, node.MigratingMarker)); err != nil {
		return err
	}
	if err := syncPath(member); err != nil {
		return err
	}
	if !existed {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return err
		}
	}
	if err := os.Rename(member, filepath.Join(dataDir, "member")); err != nil {
		if !existed {
			_ = os.Remove(dataDir)
		}
		return err
	}
	if err := syncPath(dataDir); err != nil {
		return err
	}
	return syncPath(filepath.Dir(filepath.Clean(dataDir)))
}

// writeSynced creates an empty file and syncs it and its directory.
func writeSynced(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return err
	}
	return syncPath(filepath.Dir(path))
}

// syncPath fsyncs a file or directory.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

package node

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/durabledir"
	"github.com/metastore/metastore/raftwal"
	"github.com/metastore/metastore/storeactor"
)

// checkDataDir picks the FS the member's files live on (the OS's disk,
// an in-memory FS, or Config.FS; with --unsafe-no-fsync one whose syncs do
// nothing) and decides, before anything is written under the data dir,
// whether the member may start on it (inspectDataDir).
func (n *Node) checkDataDir() (err error) {
	switch {
	case n.cfg.FS != nil:
		n.fs = n.cfg.FS
	case n.cfg.InMemory:
		n.fs = vfs.NewMem()
	default:
		n.fs = vfs.Default
	}
	if n.cfg.UnsafeNoFsync {
		n.fs = noSyncFS{n.fs}
		n.lg.Warn("--unsafe-no-fsync is set: nothing the member writes is fsynced; " +
			"an OS crash or power loss loses or corrupts its data. Use it for test clusters only")
	}
	n.layout, err = inspectDataDir(n.fs, n.cfg.DataDir, n.cfg.WALDir)
	return err
}

// openStorage writes what the data dir lacks (its format record, the WAL
// dir and its marker), opens the member's pebble DB under
// <data-dir>/member/pebble with its WAL where the layout says, paced by
// the defragmenter's compaction pacer, the raft log's WAL, and the
// snapshotter that takes
// checkpoints under <data-dir>/member/snap, from which it first removes
// what a crash left (see snapdir.go).
func (n *Node) openStorage() error {
	l := n.layout
	if err := l.prepare(n.fs); err != nil {
		return fmt.Errorf("prepare data dir: %w", err)
	}
	if l.writeRecord {
		n.lg.Info("wrote data dir format record", zap.String("data-dir", l.dataDir),
			zap.Int("format-version", l.record.Format), zap.String("wal-dir", l.walDir))
	}
	if err := durabledir.Create(n.fs, l.dbDir); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	pacer := storeactor.NewCompactionPacer()
	db, err := storeactor.OpenPebbleFS(pacer.FS(n.fs), l.dbDir, storeactor.WithPebbleLogger(n.lg.Named("pebble")),
		storeactor.WithOnFatal(n.storageFailed), storeactor.WithWALDir(l.walDir), storeactor.WithMemory(n.cfg.Memory))
	if err != nil {
		return fmt.Errorf("open data dir: %w", err)
	}
	n.db = db
	if n.wal, err = raftwal.Open(raftwal.Options{FS: pacer.FS(n.fs), Dir: l.raftLogDir(), Logger: n.lg.Named("raft")}); err != nil {
		return fmt.Errorf("open raft log: %w", err)
	}
	n.defrag = &storeactor.Defragmenter{DB: db, Pacer: pacer, Rate: n.cfg.DefragRateBytes, Logger: n.lg.Named("store")}
	n.snapDir = filepath.Join(l.memberDir, "snap")
	cleanSnapDir(n.lg, n.fs, n.snapDir)
	n.snapshots = storeactor.NewSnapshotter(db, n.fs, n.snapDir)
	return nil
}

// storageFailed is pebble's last word before it panics: a write or sync
// of its WAL failed, say. pebble still applies later unsynced writes to
// its memtable, so a raft actor the guardian restarts would load entries
// whose sync failed as saved, and a follower would acknowledge them to
// its leader: a write durable on fewer members than raft counted. So the
// member stops talking raft at once (peerCut) and reports Fatal, as etcd
// stops on a failed WAL write.
func (n *Node) storageFailed(err error) {
	if n.failedDB.Swap(true) {
		return
	}
	n.lg.Error("storage failed; stopping the member", zap.Error(err))
	n.onFatal(err)
}

// flushOnStop makes everything the store applied durable before the DB
// closes — unless pebble failed: its broken WAL cannot rotate, and a flush
// then crashes the process (pebble panics holding its lock). The store
// writes without syncing, so a WAL write that failed since the last
// truncation surfaces only at a sync: one synced empty write first finds
// out (pebble reports it to storageFailed).
func (n *Node) flushOnStop() {
	if n.failedDB.Load() {
		return
	}
	if err := storeactor.SyncWAL(n.db); err != nil {
		n.lg.Warn("flush on stop: pebble's WAL failed; not flushing", zap.Error(err))
		return
	}
	if err := n.db.Flush(); err != nil {
		n.lg.Warn("flush on stop", zap.Error(err))
	}
}

// raftFailed is the raft actor's last word before it refuses every
// request. A failed write or sync of the raft log's WAL is a failing disk
// like pebble's: what it did to pebble's files too is unknown, so the
// member stops as storageFailed does, without flushing pebble (whose
// unsynced writes the WAL replays, up to what it had synced).
func (n *Node) raftFailed(err error) {
	if errors.Is(err, raftwal.ErrFailed) {
		n.storageFailed(err)
		return
	}
	n.onFatal(err)
}

// peerCut is the transport's Cut: every peer once the storage failed,
// and those Config.PeerCut cuts.
func (n *Node) peerCut(peer uint64) bool {
	return n.failedDB.Load() || n.cfg.PeerCut != nil && n.cfg.PeerCut(peer)
}

// identity is who this member is and whom it starts with.
type identity struct {
	member, cluster uint64
	initial         []*pb.Member // --initial-cluster's members
	bootstrap       []*pb.Member // a new cluster's members (raft bootstraps them); nil when joining
	remote          []*pb.Member // the running members, when joining now
}

// loadIdentity finds the member and cluster ids. A new cluster derives
// them from --initial-cluster, or from the cluster the discovery service
// gives; a member joining an existing one takes them from the running
// members and bootstraps nothing; a restarted member has them saved.
func (n *Node) loadIdentity() error {
	if err := n.discover(); err != nil {
		return err
	}
	initial, self, err := initialMembers(n.cfg)
	if err != nil {
		return err
	}
	id := identity{member: self, cluster: ClusterID(memberIDs(initial)), initial: initial, bootstrap: initial}
	if n.cfg.InitialClusterState == "existing" {
		id.bootstrap = nil
		has, err := hasIdentity(n.db)
		if err != nil {
			return err
		}
		if !has {
			if id.member, id.cluster, id.remote, err = joinIdentity(n.cfg, n.peerClient, initial); err != nil {
				return err
			}
		}
	}
	if id.member, id.cluster, err = loadOrSaveIdentity(n.db, id.member, id.cluster); err != nil {
		return err
	}
	n.ident = id
	n.lg.Info("starting member", zap.String("name", n.cfg.Name), zap.String("member-id", fmt.Sprintf("%x", id.member)),
		zap.String("cluster-id", fmt.Sprintf("%x", id.cluster)), zap.String("data-dir", n.cfg.DataDir),
		zap.String("wal-dir", n.layout.walDir), zap.Bool("in-memory", n.cfg.InMemory), zap.Bool("unsafe-no-fsync", n.cfg.UnsafeNoFsync))
	return nil
}

// startPeers is who the transport connects to first: the membership the
// store has applied, or before that the running members (joining), the
// --initial-cluster members (new), or — joined, but restarted before
// learning the membership — the running members asked again.
func (n *Node) startPeers() []*pb.Member {
	switch peers := n.reader.Members().List; {
	case len(peers) > 0:
		return peers
	case n.ident.remote != nil:
		return n.ident.remote
	case n.ident.bootstrap != nil:
		return n.ident.bootstrap
	}
	if _, _, ms, err := joinIdentity(n.cfg, n.peerClient, n.ident.initial); err == nil {
		return ms
	}
	return nil
}

package node

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/storeactor"
)

// openStorage opens the member's pebble DB under <data-dir>/member/pebble
// (or on an in-memory FS), paced by the defragmenter's compaction pacer,
// and the snapshotter that takes checkpoints under <data-dir>/member/snap,
// from which it first removes what a crash left (see snapdir.go).
func (n *Node) openStorage() error {
	dir := filepath.Join(n.cfg.DataDir, "member", "pebble")
	n.fs = vfs.Default
	if n.cfg.InMemory {
		n.fs = vfs.NewMem()
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	n.pacer = storeactor.NewCompactionPacer()
	db, err := storeactor.OpenPebbleFS(n.pacer.FS(n.fs), dir, storeactor.WithPebbleLogger(n.lg.Named("pebble")))
	if err != nil {
		return fmt.Errorf("open data dir: %w", err)
	}
	n.db = db
	n.snapDir = filepath.Join(n.cfg.DataDir, "member", "snap")
	cleanSnapDir(n.lg, n.fs, n.snapDir)
	n.snapshots = storeactor.NewSnapshotter(db, n.fs, n.snapDir)
	return nil
}

// identity is who this member is and whom it starts with.
type identity struct {
	member, cluster uint64
	initial         []*pb.Member // --initial-cluster's members
	bootstrap       []*pb.Member // a new cluster's members (raft bootstraps them); nil when joining
	remote          []*pb.Member // the running members, when joining now
}

// loadIdentity finds the member and cluster ids. A new cluster derives
// them from --initial-cluster; a member joining an existing one takes them
// from the running members and bootstraps nothing; a restarted member has
// them saved.
func (n *Node) loadIdentity() error {
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
		zap.String("cluster-id", fmt.Sprintf("%x", id.cluster)), zap.String("data-dir", n.cfg.DataDir), zap.Bool("in-memory", n.cfg.InMemory))
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

package node

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/metastore/metastore/discovery"
	"github.com/metastore/metastore/raftactor"
)

// discover, with Config.Discovery, finds the initial cluster through the
// discovery service (etcd's --discovery-token/--discovery-endpoints) in
// place of --initial-cluster, and salts the ids with the token in place
// of --initial-cluster-token, as etcd does. A member whose raft state was
// saved skips it: its membership is in its log. Any failure stops the
// start: a member never falls back to a cluster of its own.
func (n *Node) discover() error {
	d := n.cfg.Discovery
	if d == nil {
		return nil
	}
	n.cfg.InitialCluster = map[string][]string{n.cfg.Name: n.cfg.InitialAdvertisePeerURLs}
	n.cfg.InitialClusterToken = d.Token
	started, err := raftactor.HasState(n.db, n.wal)
	if err != nil {
		return err
	}
	if started {
		n.lg.Warn("discovery token is ignored since cluster already initialized; valid logs are found",
			zap.String("data-dir", n.cfg.DataDir))
		return nil
	}
	if n.cfg.InitialClusterState == "existing" {
		return errors.New("discovery URL should not be set when joining existing initial cluster")
	}
	n.lg.Info("Bootstrapping cluster using v3 discovery.")
	cluster, err := discovery.Join(context.Background(), n.lg, n.cfg.Clock, *d,
		discovery.Member{Name: n.cfg.Name, PeerURLs: n.cfg.InitialAdvertisePeerURLs})
	if err != nil {
		return err
	}
	n.cfg.InitialCluster = cluster
	return nil
}

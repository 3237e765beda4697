package node

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/transport"
)

// initialMembers resolves --initial-cluster into the members of a new
// cluster (ordered by id, with names and peer URLs; client URLs come when
// each member publishes them) and finds this member's id.
func initialMembers(cfg Config) ([]*pb.Member, uint64, error) {
	selfURLs, ok := cfg.InitialCluster[cfg.Name]
	if !ok {
		return nil, 0, fmt.Errorf("couldn't find local name %q in the initial cluster configuration", cfg.Name)
	}
	seen := map[string]string{}
	var members []*pb.Member
	for name, urls := range cfg.InitialCluster {
		for _, u := range urls {
			if other, dup := seen[u]; dup {
				return nil, 0, fmt.Errorf("duplicate URL %q in --initial-cluster (members %q and %q)", u, other, name)
			}
			seen[u] = name
		}
		sorted := slices.Clone(urls)
		slices.Sort(sorted)
		members = append(members, &pb.Member{ID: MemberID(urls, cfg.InitialClusterToken), Name: name, PeerURLs: sorted})
	}
	slices.SortFunc(members, func(a, b *pb.Member) int { return cmp.Compare(a.ID, b.ID) })
	return members, MemberID(selfURLs, cfg.InitialClusterToken), nil
}

func memberIDs(members []*pb.Member) []uint64 {
	ids := make([]uint64, len(members))
	for i, m := range members {
		ids[i] = m.ID
	}
	return ids
}

// bootstrapPeers are raft's bootstrap entries for a new cluster: one
// AddNode per member, carrying the member for the store to record.
func bootstrapPeers(members []*pb.Member) []raft.Peer {
	peers := make([]raft.Peer, len(members))
	for i, m := range members {
		peers[i] = raft.Peer{ID: m.ID, Context: storeactor.EncodeMemberContext(m)}
	}
	return peers
}

// followConfChange keeps the transport's peers in step with the
// membership raft applies.
// A member that sees itself removed stops (as etcd's does, exit 0).
func followConfChange(tr *transport.Transport, self uint64, removed func()) func(cc *raftpb.ConfChange) {
	return func(cc *raftpb.ConfChange) {
		id := cc.GetNodeId()
		if id == self {
			if cc.GetType() == raftpb.ConfChangeRemoveNode {
				removed()
			}
			return
		}
		m := new(pb.Member)
		if len(cc.GetContext()) > 0 && string(cc.GetContext()) != string(storeactor.PromoteContext) {
			if err := proto.Unmarshal(cc.GetContext(), m); err != nil {
				return
			}
		}
		switch cc.GetType() {
		case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
			if len(m.PeerURLs) > 0 { // a promotion carries no URLs: the peer is known
				tr.AddPeer(id, m.PeerURLs)
			}
		case raftpb.ConfChangeUpdateNode:
			tr.UpdatePeer(id, m.PeerURLs)
		case raftpb.ConfChangeRemoveNode:
			tr.RemovePeer(id)
		}
	}
}

// publish records this member's name and client URLs in the cluster
// (etcd's publish): retried until it is applied or the member stops.
// Once it is, the member is ready as etcd means it, and systemd is told
// (sdnotify.go).
func (n *Node) publish() {
	memberID := n.ident.member
	r := &pb.InternalRaftRequest{ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{
		Member_ID:        memberID,
		MemberAttributes: &membershippb.Attributes{Name: n.cfg.Name, ClientUrls: n.cfg.AdvertiseClientURLs},
	}}
	for {
		select {
		case <-n.quit:
			return
		case <-n.ready:
		}
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.RequestTimeout())
		_, err := n.raft.ProposeWait(ctx, r)
		cancel()
		if err == nil {
			n.lg.Info("published local member to cluster through raft",
				zap.String("local-member-id", fmt.Sprintf("%x", memberID)),
				zap.String("local-member-attributes", fmt.Sprintf("{Name:%s ClientURLs:[%s]}", n.cfg.Name, strings.Join(n.cfg.AdvertiseClientURLs, " "))))
			notifySystemd(n.lg)
			return
		}
		n.lg.Warn("failed to publish local member to cluster through raft", zap.Error(err))
		select {
		case <-n.quit:
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

package storeactor

import (
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
)

// logMemberChange logs a conf change the store accepted, in the words of
// etcd's membership (RaftCluster): the membership is the store's, so this
// is where an operator sees a member added, promoted, updated or removed
// — by MemberAdd and friends, or by the removals --force-new-cluster
// commits. before and after are the membership around the change.
func logMemberChange(lg *zap.Logger, cc *raftpb.ConfChange, before, after *Members) {
	id := fmt.Sprintf("%x", cc.GetNodeId())
	switch cc.GetType() {
	case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
		if isPromotion(cc) {
			lg.Info("promote member", zap.String("promoted-member-id", id))
			return
		}
		m := after.Get(cc.GetNodeId())
		lg.Info("added member", zap.String("added-peer-id", id),
			zap.Strings("added-peer-peer-urls", m.GetPeerURLs()), zap.Bool("added-peer-is-learner", m.GetIsLearner()))
	case raftpb.ConfChangeRemoveNode:
		m := before.Get(cc.GetNodeId())
		lg.Info("removed member", zap.String("removed-remote-peer-id", id),
			zap.Strings("removed-remote-peer-urls", m.GetPeerURLs()), zap.Bool("removed-remote-peer-is-learner", m.GetIsLearner()))
	case raftpb.ConfChangeUpdateNode:
		m := after.Get(cc.GetNodeId())
		lg.Info("updated member", zap.String("updated-remote-peer-id", id),
			zap.Strings("updated-remote-peer-urls", m.GetPeerURLs()), zap.Bool("updated-remote-peer-is-learner", m.GetIsLearner()))
	}
}

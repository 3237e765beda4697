package gateway

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// checkQuota refuses r with etcd's NOSPACE error, raising the alarm, when
// the store says it does not fit in the space quota (--quota-backend-bytes,
// decided by storeactor.Reader.QuotaAvailable), as etcd's API layer does:
// before the write is proposed, and through raft, so every member agrees
// on the alarm. From then on the store refuses writes until the alarm is
// disarmed.
func (g *Gateway) checkQuota(ctx context.Context, r any) error {
	if g.cfg.Store.QuotaAvailable(r) {
		return nil
	}
	// As etcd: the alarm is raised best-effort; the write is refused
	// either way.
	_, _ = g.propose(ctx, &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{
		Action: pb.AlarmRequest_ACTIVATE, MemberID: g.cfg.RaftView.Load().ID, Alarm: pb.AlarmType_NOSPACE,
	}})
	return rpctypes.ErrGRPCNoSpace
}

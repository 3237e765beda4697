package gateway

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// The space quota (--quota-backend-bytes), checked as etcd checks it: on
// the API path, before a write is proposed. A write that would take the
// store past the quota raises the NOSPACE alarm — through raft, so every
// member agrees — and is refused with "database space exceeded"; from then
// on the store refuses writes until the alarm is disarmed.
//
// Unlike etcd, the quota is measured on live data — the MVCC versions and
// history a compaction has not removed (storeactor.View.LiveBytes) — not
// on the size of a file that never shrinks: deleting and compacting bring
// usage down at once, without a defragmentation.

// etcd's cost estimates of what a request adds to the store.
const (
	quotaKVOverhead    = 256
	quotaLeaseOverhead = 64
)

// quotaCost is what r may add to the store; 0 for requests that only read
// or delete.
func quotaCost(r any) int64 {
	switch r := r.(type) {
	case *pb.PutRequest:
		return quotaKVOverhead + int64(len(r.Key)+len(r.Value))
	case *pb.TxnRequest:
		branch := func(ops []*pb.RequestOp) (n int64) {
			for _, op := range ops {
				if p := op.GetRequestPut(); p != nil {
					n += quotaCost(p)
				} else if t := op.GetRequestTxn(); t != nil {
					n += quotaCost(t)
				}
			}
			return n
		}
		return max(branch(r.Success), branch(r.Failure))
	case *pb.LeaseGrantRequest:
		return quotaLeaseOverhead
	}
	return 0
}

// checkQuota refuses r with etcd's NOSPACE error, raising the alarm, when
// it would take the store past the quota.
func (g *Gateway) checkQuota(ctx context.Context, r any) error {
	cost := quotaCost(r)
	if cost == 0 || g.cfg.QuotaBytes <= 0 {
		return nil
	}
	if g.cfg.Store.View().LiveBytes+cost < g.cfg.QuotaBytes {
		return nil
	}
	// As etcd: the alarm is raised best-effort; the write is refused
	// either way.
	_, _ = g.propose(ctx, &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{
		Action: pb.AlarmRequest_ACTIVATE, MemberID: g.cfg.RaftView.Load().ID, Alarm: pb.AlarmType_NOSPACE,
	}})
	return rpctypes.ErrGRPCNoSpace
}

package storeactor

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// The space quota (--quota-backend-bytes), decided as etcd decides it:
// a write is refused when what it may add would take the store past the
// quota (the gateway, which asks before proposing, then raises the NOSPACE
// alarm, as etcd's API layer does). The alarm, once raised, stays until
// disarmed, whatever the quota becomes.
//
// Unlike etcd, usage is measured on live data — the MVCC versions and
// history a compaction has not removed (View.LiveBytes) — not on the size
// of a file that never shrinks: deleting and compacting bring usage down
// at once, without a defragmentation.

// DefaultQuotaBytes is etcd's quota when --quota-backend-bytes is 0.
const DefaultQuotaBytes = 2 << 30

// etcd's cost estimates of what a request adds to the store.
const (
	quotaKVOverhead    = 256
	quotaLeaseOverhead = 64
)

// quotaBytes is the quota a --quota-backend-bytes value means: 0 is
// etcd's default; a negative value turns the quota off (etcd's
// passthrough quota) and is reported as is, as etcd reports it.
func quotaBytes(flag int64) int64 {
	if flag == 0 {
		return DefaultQuotaBytes
	}
	return flag
}

// QuotaBytes is the quota the member runs with now (see quotaBytes).
func (r *Reader) QuotaBytes() int64 { return r.quota.Load() }

// QuotaAvailable reports whether req fits in the quota (etcd's
// BackendQuota.Available): requests that only read or delete always do.
func (r *Reader) QuotaAvailable(req any) bool {
	cost, quota := quotaCost(req), r.quota.Load()
	return cost == 0 || quota < 0 || r.View().LiveBytes+cost < quota
}

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

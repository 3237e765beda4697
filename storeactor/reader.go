package storeactor

import (
	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Reader serves reads concurrently on the caller's goroutine. It holds only
// the DB handle and the View cell the Store publishes; any number of
// goroutines may use one Reader.
type Reader struct {
	db   *pebble.DB
	view *viewRef
}

// View returns the latest published store state.
func (r *Reader) View() *View { return r.view.Load() }

// Range answers a RangeRequest at the current published revision.
//
// Consistency: the revision is fixed before the read, and reads at a fixed
// revision ignore newer writes. A compaction published after the read
// began may delete versions the read needs; so the compaction point is
// checked again after the read, and a read that may have raced it is
// answered as compacted, as it would have been a moment later anyway.
func (r *Reader) Range(req *pb.RangeRequest) (*pb.RangeResponse, error) {
	v := r.view.Load()
	resp, err := executeRange(r.db, req, v.Rev, v.CompactRev)
	if err != nil {
		return nil, err
	}
	if err := r.recheckCompaction(req.Revision, v.Rev); err != nil {
		return nil, err
	}
	return resp, nil
}

// Txn runs a read-only txn (no put, delete or nested writes) without going
// through raft, as etcd does.
func (r *Reader) Txn(req *pb.TxnRequest) (*pb.TxnResponse, error) {
	v := r.view.Load()
	tw := &writeTxn{r: r.db, beginRev: v.Rev}
	resp, err := tw.applyTxn(req, v.CompactRev, noLeases)
	if err != nil {
		return nil, err
	}
	for _, rev := range txnRangeRevisions(req, nil) {
		if err := r.recheckCompaction(rev, v.Rev); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

func (r *Reader) recheckCompaction(reqRev, curRev int64) error {
	if reqRev <= 0 {
		reqRev = curRev
	}
	if reqRev < r.view.Load().CompactRev {
		return rpctypes.ErrGRPCCompacted
	}
	return nil
}

func txnRangeRevisions(rt *pb.TxnRequest, dst []int64) []int64 {
	for _, ops := range [][]*pb.RequestOp{rt.Success, rt.Failure} {
		for _, op := range ops {
			switch v := op.Request.(type) {
			case *pb.RequestOp_RequestRange:
				dst = append(dst, v.RequestRange.Revision)
			case *pb.RequestOp_RequestTxn:
				dst = txnRangeRevisions(v.RequestTxn, dst)
			}
		}
	}
	return append(dst, 0)
}

// IsTxnReadOnly reports whether a txn only reads, on every path.
func IsTxnReadOnly(rt *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{rt.Success, rt.Failure} {
		for _, op := range ops {
			if op.GetRequestRange() == nil {
				return false
			}
		}
	}
	return true
}

// noLeases answers "does lease id exist" until the lease actor exists.
func noLeases(int64) bool { return false }

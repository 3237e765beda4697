package gateway

import (
	"context"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/authactor"
	"github.com/metastore/metastore/storeactor"
)

// kvServer implements etcd's KV service.
type kvServer struct {
	pb.UnimplementedKVServer
	g *Gateway
}

func (s *kvServer) Range(ctx context.Context, r *pb.RangeRequest) (_ *pb.RangeResponse, err error) {
	if err := checkRangeRequest(r); err != nil {
		return nil, err
	}
	defer func(start time.Time) { observeRequest(rangeRequest, err == nil, start) }(time.Now())
	if !r.Serializable {
		if err := s.g.linearizableRead(ctx); err != nil {
			return nil, err
		}
	}
	var resp *pb.RangeResponse
	var t *rangeTicket // the read's share of --max-range-bytes-in-flight (rangebudget.go)
	err = s.g.authorizedRead(ctx, func(st *authactor.State, ai authactor.Info) error {
		return st.CheckOp(ai, r.Key, r.RangeEnd, false)
	}, func() (err error) {
		resp, t, err = s.g.readRange(ctx, r)
		return err
	})
	if err != nil {
		t.release()
		return nil, err
	}
	s.g.header(resp.Header)
	if err := s.g.holdForSend(ctx, resp, t); err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *kvServer) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := s.g.checkQuota(ctx, r); err != nil {
		return nil, err
	}
	if err := checkPutRequest(r); err != nil {
		return nil, err
	}
	return proposeFor[*pb.PutResponse](ctx, s.g, &pb.InternalRaftRequest{Put: r})
}

func (s *kvServer) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := checkDeleteRequest(r); err != nil {
		return nil, err
	}
	return proposeFor[*pb.DeleteRangeResponse](ctx, s.g, &pb.InternalRaftRequest{DeleteRange: r})
}

func (s *kvServer) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if err := s.g.checkQuota(ctx, r); err != nil {
		return nil, err
	}
	if err := checkTxnRequest(r, s.g.cfg.MaxTxnOps); err != nil {
		return nil, err
	}
	if _, _, err := checkIntervals(r.Success); err != nil {
		return nil, err
	}
	if _, _, err := checkIntervals(r.Failure); err != nil {
		return nil, err
	}
	if storeactor.IsTxnReadOnly(r) {
		return s.readOnlyTxn(ctx, r)
	}
	res, err := s.g.propose(ctx, &pb.InternalRaftRequest{Txn: r})
	if err != nil {
		return nil, err
	}
	resp := res.Resp.(*pb.TxnResponse)
	s.g.header(resp.Header)
	return resp, nil
}

// readOnlyTxn answers a txn that only reads as etcd does: as a read, not
// through raft, linearizable unless every range in it asks to be
// serializable. Its ranges are charged to --max-range-bytes-in-flight and
// its response held until sent, as a Range's.
func (s *kvServer) readOnlyTxn(ctx context.Context, r *pb.TxnRequest) (_ *pb.TxnResponse, err error) {
	defer func(start time.Time) { observeRequest(requestTypeReadonlyTxn, err == nil, start) }(time.Now())
	if !isTxnSerializable(r) {
		if err := s.g.linearizableRead(ctx); err != nil {
			return nil, err
		}
	}
	var resp *pb.TxnResponse
	var t *rangeTicket
	err = s.g.authorizedRead(ctx, func(st *authactor.State, ai authactor.Info) error {
		return st.CheckTxn(ai, r, nil) // read-only: no puts, no lease keys to look at
	}, func() (err error) {
		resp, t, err = s.g.readTxn(ctx, r)
		return err
	})
	if err != nil {
		t.release()
		return nil, err
	}
	s.g.header(resp.Header)
	if err := s.g.holdTxnForSend(resp, t); err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *kvServer) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	if err := s.g.requireAdmin(ctx); err != nil {
		return nil, err
	}
	res, err := s.g.propose(ctx, &pb.InternalRaftRequest{Compaction: r})
	if err != nil {
		return nil, err
	}
	if r.Physical {
		// As etcd: answer a physical compaction once the old versions are
		// gone. The store publishes its progress, which survives restarts
		// of the store actor (it resumes from pebble).
		if err := s.g.waitCompacted(ctx, r.Revision); err != nil {
			return nil, err
		}
	}
	resp := res.Resp.(*pb.CompactionResponse)
	s.g.header(resp.Header)
	return resp, nil
}

func isTxnSerializable(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, u := range ops {
			if rr := u.GetRequestRange(); rr == nil || !rr.Serializable {
				return false
			}
		}
	}
	return true
}

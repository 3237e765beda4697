package gateway

import (
	"context"
	"errors"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/authactor"
	"github.com/metastore/metastore/leaseactor"
)

// leaseServer implements etcd's Lease service: grants and revokes go
// through raft (the store applies them); keep-alives, time-to-live and the
// lease list are answered by the lease actor, which owns expiry.
type leaseServer struct {
	pb.UnimplementedLeaseServer
	g *Gateway
}

func (s *leaseServer) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	if err := s.g.checkQuota(ctx, r); err != nil {
		return nil, err
	}
	if err := s.g.requireUser(ctx); err != nil {
		return nil, err
	}
	for r.ID == 0 { // etcd picks the id from its request id generator
		r.ID = int64(s.g.cfg.IDs.Next() & (1<<63 - 1))
	}
	return proposeFor[*pb.LeaseGrantResponse](ctx, s.g, &pb.InternalRaftRequest{LeaseGrant: r})
}

// LeaseRevoke needs a user; the store checks at apply that it may write
// every key attached.
func (s *leaseServer) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	if err := s.g.requireUser(ctx); err != nil {
		return nil, err
	}
	return proposeFor[*pb.LeaseRevokeResponse](ctx, s.g, &pb.InternalRaftRequest{LeaseRevoke: r})
}

// LeaseTimeToLive needs a user, and with keys, read permission on every
// key attached (etcd's checkLeaseTimeToLive).
func (s *leaseServer) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	if err := s.g.authorize(ctx, func(st *authactor.State, ai authactor.Info) error {
		if err := st.CheckUser(ai); err != nil || !r.Keys {
			return err
		}
		return st.CheckLeaseRead(ai, r.ID, s.g.cfg.Store.LeaseKeys)
	}); err != nil {
		return nil, err
	}
	res, err := actors.Ask(ctx, s.g.cfg.Root, s.g.cfg.Leases, func(reply chan<- leaseactor.TTLResult) any {
		return &leaseactor.TimeToLive{ID: r.ID, Reply: reply}
	})
	if err == nil {
		err = res.Err
	}
	if errors.Is(err, rpctypes.ErrGRPCNotLeader) && s.g.cfg.LeaderLeases != nil {
		rctx, cancel := context.WithTimeout(ctx, s.g.cfg.RequestTimeout)
		res, err = s.g.cfg.LeaderLeases.TimeToLive(rctx, r.ID)
		cancel()
	}
	if err != nil {
		return nil, s.g.ctxErr(ctx, err)
	}
	resp := &pb.LeaseTimeToLiveResponse{Header: &pb.ResponseHeader{}, ID: r.ID, TTL: -1}
	if res.Found { // etcd answers an unknown lease with TTL -1, not an error
		resp.TTL, resp.GrantedTTL = res.TTL, res.GrantedTTL
		if r.Keys {
			if resp.Keys, err = s.g.cfg.Store.LeaseKeys(r.ID); err != nil {
				return nil, err
			}
		}
	}
	s.g.header(resp.Header)
	return resp, nil
}

func (s *leaseServer) LeaseLeases(ctx context.Context, _ *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	ids, err := actors.Ask(ctx, s.g.cfg.Root, s.g.cfg.Leases, func(reply chan<- []int64) any {
		return &leaseactor.List{Reply: reply}
	})
	if err != nil {
		return nil, s.g.ctxErr(ctx, err)
	}
	if err := s.g.authorize(ctx, func(st *authactor.State, ai authactor.Info) error {
		if err := st.CheckUser(ai); err != nil {
			return err
		}
		for _, id := range ids {
			if err := st.CheckLeaseRead(ai, id, s.g.cfg.Store.LeaseKeys); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	resp := &pb.LeaseLeasesResponse{Header: &pb.ResponseHeader{}, Leases: make([]*pb.LeaseStatus, len(ids))}
	for i, id := range ids {
		resp.Leases[i] = &pb.LeaseStatus{ID: id}
	}
	s.g.header(resp.Header)
	return resp, nil
}

// LeaseKeepAlive answers each request with the lease's TTL after renewing
// it, or TTL 0 when the lease is gone, as etcd does. The stream ends when
// the client closes its side, or with the lessor's refusal: "not a primary
// lessor" (codes.Unknown, as etcd) from a leader that could not confirm
// its leadership for the renewal, on which clientv3 opens a new stream to
// another endpoint.
func (s *leaseServer) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	ctx := stream.Context()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			countStreamFailure(ctx, err, keepAliveRecvFailures)
			return err
		}
		resp := &pb.LeaseKeepAliveResponse{ID: req.ID, Header: &pb.ResponseHeader{}}
		s.g.header(resp.Header)
		// etcd's checkLeaseRenew: a user who may write every attached key.
		if err := s.g.authorize(ctx, func(st *authactor.State, ai authactor.Info) error {
			if err := st.CheckUser(ai); err != nil {
				return err
			}
			return st.CheckLeaseWrite(ai, req.ID, s.g.cfg.Store.LeaseKeys)
		}); err != nil {
			return err
		}
		res, err := actors.Ask(ctx, s.g.cfg.Root, s.g.cfg.Leases, func(reply chan<- leaseactor.RenewResult) any {
			return &leaseactor.Renew{ID: req.ID, Reply: reply}
		})
		if err != nil {
			return s.g.ctxErr(ctx, err)
		}
		if errors.Is(res.Err, rpctypes.ErrGRPCNotLeader) && s.g.cfg.LeaderLeases != nil {
			rctx, cancel := context.WithTimeout(ctx, s.g.cfg.RequestTimeout)
			res.TTL, res.Err = s.g.cfg.LeaderLeases.Renew(rctx, req.ID)
			cancel()
		}
		switch {
		case errors.Is(res.Err, rpctypes.ErrGRPCLeaseNotFound):
			resp.TTL = 0
		case res.Err != nil:
			return res.Err
		default:
			resp.TTL = res.TTL
		}
		if err := stream.Send(resp); err != nil {
			countStreamFailure(ctx, err, keepAliveSendFailures)
			return err
		}
	}
}

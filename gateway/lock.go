package gateway

import (
	"context"
	"errors"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	epb "go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
	lpb "go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
)

// The Lock and Election services are etcd's recipes run on the server for
// clients without an etcd SDK: like etcd, they use clientv3's concurrency
// package against this member itself (Config.Self, an in-process client),
// so a lock is a key under its name with the lock's lease, ordered by
// create revision, and waiting is a watch on the predecessor's delete.

type lockServer struct {
	lpb.UnimplementedLockServer
	g *Gateway
}

// session is a concurrency session on an existing lease (the request's);
// orphaned, so that nothing here keeps the lease alive or revokes it.
func (g *Gateway) session(ctx context.Context, lease int64) (*concurrency.Session, error) {
	s, err := concurrency.NewSession(g.cfg.Self, concurrency.WithLease(clientv3.LeaseID(lease)), concurrency.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	s.Orphan()
	return s, nil
}

func (s *lockServer) Lock(ctx context.Context, r *lpb.LockRequest) (*lpb.LockResponse, error) {
	ctx = asCaller(ctx)
	sess, err := s.g.session(ctx, r.Lease)
	if err != nil {
		return nil, err
	}
	m := concurrency.NewMutex(sess, string(r.Name))
	if err := m.Lock(ctx); err != nil {
		return nil, err
	}
	return &lpb.LockResponse{Header: m.Header(), Key: []byte(m.Key())}, nil
}

func (s *lockServer) Unlock(ctx context.Context, r *lpb.UnlockRequest) (*lpb.UnlockResponse, error) {
	ctx = asCaller(ctx)
	resp, err := s.g.cfg.Self.Delete(ctx, string(r.Key))
	if err != nil {
		return nil, err
	}
	return &lpb.UnlockResponse{Header: resp.Header}, nil
}

type electionServer struct {
	epb.UnimplementedElectionServer
	g *Gateway
}

// errMissingLeaderKey is etcd's answer to Proclaim/Resign without a leader.
var errMissingLeaderKey = errors.New(`"leader" field must be provided`)

func (s *electionServer) Campaign(ctx context.Context, r *epb.CampaignRequest) (*epb.CampaignResponse, error) {
	ctx = asCaller(ctx)
	sess, err := s.g.session(ctx, r.Lease)
	if err != nil {
		return nil, err
	}
	e := concurrency.NewElection(sess, string(r.Name))
	if err := e.Campaign(ctx, string(r.Value)); err != nil {
		return nil, err
	}
	return &epb.CampaignResponse{Header: e.Header(), Leader: &epb.LeaderKey{
		Name: r.Name, Key: []byte(e.Key()), Rev: e.Rev(), Lease: int64(sess.Lease()),
	}}, nil
}

// resume rebuilds the election a leader key stands for.
func (s *electionServer) resume(ctx context.Context, l *epb.LeaderKey) (*concurrency.Election, error) {
	if l == nil {
		return nil, errMissingLeaderKey
	}
	sess, err := s.g.session(ctx, l.Lease)
	if err != nil {
		return nil, err
	}
	return concurrency.ResumeElection(sess, string(l.Name), string(l.Key), l.Rev), nil
}

func (s *electionServer) Proclaim(ctx context.Context, r *epb.ProclaimRequest) (*epb.ProclaimResponse, error) {
	ctx = asCaller(ctx)
	e, err := s.resume(ctx, r.Leader)
	if err != nil {
		return nil, err
	}
	if err := e.Proclaim(ctx, string(r.Value)); err != nil {
		return nil, err
	}
	return &epb.ProclaimResponse{Header: e.Header()}, nil
}

func (s *electionServer) Resign(ctx context.Context, r *epb.ResignRequest) (*epb.ResignResponse, error) {
	ctx = asCaller(ctx)
	e, err := s.resume(ctx, r.Leader)
	if err != nil {
		return nil, err
	}
	if err := e.Resign(ctx); err != nil {
		return nil, err
	}
	return &epb.ResignResponse{Header: e.Header()}, nil
}

func (s *electionServer) Leader(ctx context.Context, r *epb.LeaderRequest) (*epb.LeaderResponse, error) {
	ctx = asCaller(ctx)
	// A session is needed only to name the election; -1 is etcd's "no
	// lease" choice here too, so no lease is granted.
	sess, err := s.g.session(ctx, -1)
	if err != nil {
		return nil, err
	}
	l, err := concurrency.NewElection(sess, string(r.Name)).Leader(ctx)
	if err != nil {
		return nil, err
	}
	return &epb.LeaderResponse{Header: l.Header, Kv: l.Kvs[0]}, nil
}

func (s *electionServer) Observe(r *epb.LeaderRequest, stream epb.Election_ObserveServer) error {
	ctx := asCaller(stream.Context())
	sess, err := s.g.session(ctx, -1)
	if err != nil {
		return err
	}
	ch := concurrency.NewElection(sess, string(r.Name)).Observe(ctx)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case resp, ok := <-ch:
			if !ok {
				return ctx.Err()
			}
			if err := stream.Send(&epb.LeaderResponse{Header: resp.Header, Kv: resp.Kvs[0]}); err != nil {
				return err
			}
		}
	}
}

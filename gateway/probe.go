package gateway

import (
	"context"
	"errors"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// The member as health checks see it (health.Member): what etcd's
// /health, /livez, /readyz and gRPC health service look at.

// Alarms are the active alarms, or why they could not be read.
func (g *Gateway) Alarms() ([]*pb.AlarmMember, error) { return g.cfg.Store.Alarms() }

// HasLeader reports whether raft knows a leader.
func (g *Gateway) HasLeader() bool { return g.cfg.RaftView.Load().Lead != 0 }

// IsLearner reports whether this member is a learner.
func (g *Gateway) IsLearner() bool { return g.isLearner() }

// Read is etcd's probe read: a keys-only Range of at most one key,
// linearizable unless serializable, as the member itself (etcd runs it as
// root: auth does not apply).
func (g *Gateway) Read(ctx context.Context, serializable bool) (err error) {
	// Timed as a Range, as etcd's health reads are.
	defer func(start time.Time) { observeRequest(rangeRequest, err == nil, start) }(time.Now())
	if !serializable {
		if err := g.linearizableRead(ctx); err != nil {
			return probeError(err)
		}
	}
	_, err = g.cfg.Store.Range(&pb.RangeRequest{KeysOnly: true, Limit: 1})
	return probeError(err)
}

// probeError is err as etcd's health checks word it: the server's own
// error text ("etcdserver: ..."), not the gRPC status a client would get.
// Unlike etcd, a read with no leader fails at once ("etcdserver: no
// leader") rather than after the request timeout: a probe learns the same
// thing without waiting out its own timeout.
func probeError(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(rpctypes.ErrorDesc(err))
}

package gateway

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
)

// A learner replicates but does not serve: like etcd's, it answers only
// Status, serializable Range and the Snapshot stream, and refuses the rest
// with "rpc not supported for learner" (clients then use another member).

const snapshotMethod = "/etcdserverpb.Maintenance/Snapshot"

// isLearner reports whether this member is a learner in the membership
// the store last applied.
func (g *Gateway) isLearner() bool {
	self := g.cfg.RaftView.Load().ID
	for _, m := range g.cfg.Members() {
		if m.ID == self {
			return m.IsLearner
		}
	}
	return false
}

func learnerUnary(g *Gateway) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if g.isLearner() && !supportedForLearner(req) {
			return nil, rpctypes.ErrGRPCNotSupportedForLearner
		}
		return handler(ctx, req)
	}
}

func learnerStream(g *Gateway) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if info.FullMethod != snapshotMethod && g.isLearner() {
			return rpctypes.ErrGRPCNotSupportedForLearner
		}
		return handler(srv, ss)
	}
}

func supportedForLearner(req any) bool {
	switch r := req.(type) {
	case *pb.StatusRequest:
		return true
	case *pb.RangeRequest:
		return r.Serializable
	}
	return false
}

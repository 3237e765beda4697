package gateway

import (
	"context"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/actors"
)

// Request stats: etcd's log line for unary RPCs, which operators grep for
// slow requests. Every unary RPC of the client server is timed from before
// the first interceptor to after the handler; "request stats" is logged at
// debug for every RPC when the logger is at debug, otherwise at warn for an
// RPC that took longer than --warning-unary-request-duration (as etcd: at
// debug level a slow RPC gets the debug line only). The fields, their
// names and the request content are etcd's (see requestStats).

// defaultWarningUnaryRequestDuration is etcd's --warning-unary-request-duration.
const defaultWarningUnaryRequestDuration = 300 * time.Millisecond

// warnUnaryDuration is the threshold a --warning-unary-request-duration
// value means: etcd's default for 0.
func warnUnaryDuration(flag time.Duration) time.Duration {
	if flag <= 0 {
		return defaultWarningUnaryRequestDuration
	}
	return flag
}

// SetWarnUnaryDuration changes --warning-unary-request-duration while the
// member runs (a configuration reload).
type SetWarnUnaryDuration struct {
	Duration time.Duration
}

// Validate refuses a negative duration.
func (m *SetWarnUnaryDuration) Validate() error {
	if m.Duration < 0 {
		return fmt.Errorf("--warning-unary-request-duration must not be negative (got %v)", m.Duration)
	}
	return nil
}

// SetWarnUnaryDuration puts m in effect for the RPCs that end from now
// on, and logs and counts the change.
func (g *Gateway) SetWarnUnaryDuration(m *SetWarnUnaryDuration) error {
	if err := m.Validate(); err != nil {
		return err
	}
	d := warnUnaryDuration(m.Duration)
	if old := time.Duration(g.warnUnary.Swap(int64(d))); old != d {
		actors.SettingChanged(g.cfg.Logger, "warning-unary-request-duration", old, d)
	}
	return nil
}

// withRequestStats returns first (the chain's outermost interceptor) with
// request stats logged around it. It wraps first rather than joining the
// chain as a link of its own: each link of gRPC's chain allocates a
// handler per call, and a fast RPC with the logger above debug must cost
// nothing here but two clock reads and a level check.
func (g *Gateway) withRequestStats(first grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := first(ctx, req, info, handler)
		took := time.Since(start)
		if lvl, ok := g.requestStatsLevel(took); ok {
			g.logRequestStats(ctx, lvl, info.FullMethod, start, took, req, resp)
		}
		return resp, err
	}
}

// requestStatsLevel is the level a unary RPC that ran for took is logged
// at, and whether it is logged at all.
func (g *Gateway) requestStatsLevel(took time.Duration) (zapcore.Level, bool) {
	switch {
	case g.cfg.Logger.Core().Enabled(zap.DebugLevel):
		return zap.DebugLevel, true
	case took > time.Duration(g.warnUnary.Load()):
		return zap.WarnLevel, true
	}
	return 0, false
}

// logRequestStats writes etcd's "request stats" line, fields in etcd's
// order; remote is etcd's placeholder when the RPC has no peer, and a
// JSON gateway request's HTTP client (remoteAddr).
func (g *Gateway) logRequestStats(ctx context.Context, lvl zapcore.Level, method string, start time.Time, took time.Duration, req, resp any) {
	remote := remoteAddr(ctx)
	if remote == "" {
		remote = "No remote client info."
	}
	s := requestStats(req, resp)
	g.cfg.Logger.Log(lvl, "request stats",
		zap.Time("start time", start),
		zap.Duration("time spent", took),
		zap.String("remote", remote),
		zap.String("response type", method),
		zap.Int64("request count", s.reqCount),
		zap.Int("request size", s.reqSize),
		zap.Int64("response count", s.respCount),
		zap.Int("response size", s.respSize),
		zap.String("request content", s.content),
	)
}

// rpcStats are the counts, sizes and content etcd reports for an RPC.
type rpcStats struct {
	reqCount, respCount int64
	reqSize, respSize   int
	content             string
}

// requestStats measures an RPC as etcd does. Only Range, Put, DeleteRange
// and Txn are described; every other RPC (auth requests among them, so no
// password is ever printed) gets -1 counts and sizes and no content. A put's
// value is printed as its size (value_size), in puts and in a txn's puts
// and value compares alike. A txn counts the ops of the branch it took.
// A failed RPC's response is a typed nil: its request is still described
// (a txn's is not: etcd needs the response to pick the branch), its
// response counts 0. The switch is on the response, as etcd's, so a
// request refused before its handler ran (an untyped nil) gets -1s.
func requestStats(req, resp any) rpcStats {
	var s rpcStats
	switch resp := resp.(type) {
	case *pb.RangeResponse:
		if r, ok := req.(*pb.RangeRequest); ok {
			s.reqSize, s.content = proto.Size(r), r.String()
		}
		if resp != nil {
			s.respCount, s.respSize = resp.GetCount(), proto.Size(resp)
		}
	case *pb.PutResponse:
		if r, ok := req.(*pb.PutRequest); ok {
			s.reqCount, s.reqSize, s.content = 1, proto.Size(r), pb.NewLoggablePutRequest(r).String()
		}
		if resp != nil {
			s.respSize = proto.Size(resp)
		}
	case *pb.DeleteRangeResponse:
		if r, ok := req.(*pb.DeleteRangeRequest); ok {
			s.reqSize, s.content = proto.Size(r), r.String()
		}
		if resp != nil {
			s.respCount, s.respSize = resp.GetDeleted(), proto.Size(resp)
		}
	case *pb.TxnResponse:
		if r, ok := req.(*pb.TxnRequest); ok && resp != nil {
			ops := r.GetFailure()
			if resp.GetSucceeded() {
				ops = r.GetSuccess()
			}
			s.reqCount = int64(len(ops))
			for _, op := range ops {
				s.reqSize += proto.Size(op)
			}
			s.content = pb.NewLoggableTxnRequest(r).String()
		}
		if resp != nil {
			s.respSize = proto.Size(resp)
		}
	default:
		s = rpcStats{reqCount: -1, reqSize: -1, respCount: -1, respSize: -1}
	}
	return s
}

package health

import (
	"context"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/metastore/metastore/actors"
)

// allServices is the gRPC health service name that stands for the whole
// server, the one etcd sets.
const allServices = ""

// GRPCStatus keeps a grpc.health.v1 server's status in step with the
// member: SERVING while it has a leader and no CORRUPT alarm (and can
// read its alarms), NOT_SERVING otherwise, so that Kubernetes gRPC probes
// and Envoy/Istio health checks move traffic away from a member that
// cannot answer. (etcd 3.7 sets
// SERVING once and only drops it during a defragmentation behind a
// feature gate; MetaStore has no stop-the-world defragmentation, so it
// reports what a client can actually get instead.)
//
// It is the grpc.health.v1 service to register: Check and a new Watch
// first bring the status up to date, so a probe right after a leader is
// elected (or lost) is not answered from the previous tick; the tick
// moves the status for Watch streams already open.
type GRPCStatus struct {
	*health.Server
	m    Member
	lg   *zap.Logger
	mu   sync.Mutex
	last healthpb.HealthCheckResponse_ServingStatus
	stop func()
}

// Check answers from the member's state now.
func (g *GRPCStatus) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	g.update()
	return g.Server.Check(ctx, req)
}

// Watch starts from the member's state now, then follows the ticks.
func (g *GRPCStatus) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	g.update()
	return g.Server.Watch(req, stream)
}

// FollowGRPC starts updating srv from m every interval (the heartbeat
// interval: leader changes are seen within one).
func FollowGRPC(m Member, clock actors.Clock, interval time.Duration, lg *zap.Logger) *GRPCStatus {
	if lg == nil {
		lg = zap.NewNop()
	}
	g := &GRPCStatus{Server: health.NewServer(), m: m, lg: lg, last: -1}
	g.update()
	g.stop = clock.Every(interval, g.update)
	return g
}

// Stop stops following and reports NOT_SERVING to every watcher (the
// member is going away).
func (g *GRPCStatus) Stop() {
	g.stop()
	g.Server.Shutdown()
}

func (g *GRPCStatus) update() {
	status, reason := healthpb.HealthCheckResponse_SERVING, ""
	switch {
	case !g.m.HasLeader():
		status, reason = healthpb.HealthCheckResponse_NOT_SERVING, "no leader"
	default:
		if err := alarmActive(g.m, pb.AlarmType_CORRUPT); err != nil {
			status, reason = healthpb.HealthCheckResponse_NOT_SERVING, err.Error()
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if status == g.last {
		return
	}
	g.last = status
	if status == healthpb.HealthCheckResponse_SERVING {
		g.lg.Info("grpc service status changed", zap.String("service", allServices), zap.String("status", status.String()))
	} else {
		g.lg.Warn("grpc service status changed", zap.String("service", allServices), zap.String("status", status.String()), zap.String("reason", reason))
	}
	g.Server.SetServingStatus(allServices, status)
}

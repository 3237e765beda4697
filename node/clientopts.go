package node

import (
	"math"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// clientServerOptions are the gRPC server options the serving flags set
// on the client listeners' servers, as etcd's embed.serveClients builds
// them. They come after the gateway's own options and so replace its
// defaults: every one is always given, its zero value standing for what
// etcd gets by leaving the option out (gRPC's defaults), so a flag set to
// 0 behaves as etcd's does.
func (cfg *Config) clientServerOptions() []grpc.ServerOption {
	policy := keepalive.EnforcementPolicy{} // gRPC's: MinTime 5 minutes
	if cfg.GRPCKeepAliveMinTime > 0 {
		policy = keepalive.EnforcementPolicy{MinTime: cfg.GRPCKeepAliveMinTime, PermitWithoutStream: false}
	}
	params := keepalive.ServerParameters{} // gRPC's: Time 2h, Timeout 20s
	if cfg.GRPCKeepAliveInterval > 0 && cfg.GRPCKeepAliveTimeout > 0 {
		params = keepalive.ServerParameters{Time: cfg.GRPCKeepAliveInterval, Timeout: cfg.GRPCKeepAliveTimeout}
	}
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(cfg.maxConcurrentStreams()),
		grpc.KeepaliveEnforcementPolicy(policy),
		grpc.KeepaliveParams(params),
	}
}

// maxConcurrentStreams is --max-concurrent-streams, with 0 (unset) as
// etcd's default.
func (cfg *Config) maxConcurrentStreams() uint32 {
	if cfg.MaxConcurrentStreams == 0 {
		return math.MaxUint32
	}
	return cfg.MaxConcurrentStreams
}

// logClientServerOptions says what the client listeners enforce, for an
// operator telling why a client was sent GOAWAY or made to wait.
func (cfg *Config) logClientServerOptions(lg *zap.Logger) {
	lg.Info("configuring client gRPC servers",
		zap.Uint32("max-concurrent-streams", cfg.maxConcurrentStreams()),
		zap.Duration("grpc-keepalive-min-time", cfg.GRPCKeepAliveMinTime),
		zap.Duration("grpc-keepalive-interval", cfg.GRPCKeepAliveInterval),
		zap.Duration("grpc-keepalive-timeout", cfg.GRPCKeepAliveTimeout))
}

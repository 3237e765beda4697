package gateway

import (
	"context"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/actors"
)

// errPanic is what a client gets from an RPC whose handler panicked:
// Internal, which clientv3 does not retry. The panic itself is not shown
// to clients; the member's log has it, with the stack.
var errPanic = status.Error(codes.Internal, "etcdserver: internal error (see the member's log)")

// recoveryOption turns a panic on a request goroutine into errPanic for
// that RPC alone, logged with its method and stack and counted
// (metastore_recovered_panics_total{where="grpc"}): without it gRPC lets
// the panic end the process, every client's connection with it.
func (g *Gateway) recoveryOption() recovery.Option {
	return recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		method, _ := grpc.Method(ctx)
		actors.ReportPanic(g.cfg.Logger, actors.PanicGRPC, p, zap.String("method", method))
		return errPanic
	})
}

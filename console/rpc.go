package console

import (
	"context"
	"net"
	"net/http"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"
)

// How long the console waits for one gRPC request: reads and writes, and
// the maintenance calls that take as long as the work (compaction with
// physical=true, defragmentation).
const (
	rpcTimeout  = 30 * time.Second
	longTimeout = 10 * time.Minute
)

// asUser is the context of a gRPC request made for the session's user:
// the user's token as etcd's "token" metadata (none when anonymous) and
// the browser's address as x-forwarded-for, which the member's audit log
// records for requests over its in-process connection. The request is
// cancelled with the browser's, or after timeout (0: never).
func asUser(r *http.Request, s *session, timeout time.Duration) (context.Context, context.CancelFunc) {
	md := metadata.Pairs("x-forwarded-for", clientIP(r))
	if s.token != "" {
		md.Set(rpctypes.TokenFieldNameGRPC, s.token)
	}
	ctx := metadata.NewOutgoingContext(r.Context(), md)
	if timeout == 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, timeout)
}

// clientIP is the browser's address (without port).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// fail is the reply to a failed gRPC request. A stored session whose
// token the member no longer accepts ends: the browser must log in again.
func (c *Console) fail(s *session, err error) reply {
	if s.token != "" && needsLogin(err) {
		c.sessions.end(s)
		c.lg.Info("console session ended: the member no longer accepts its token", zap.String("user", s.user), zap.Error(err))
	}
	return rpcReply(err)
}

// logAction logs a mutating action: who, what, on what, and how it ended.
func (c *Console) logAction(r *http.Request, s *session, action string, rep reply, fields ...zap.Field) {
	fields = append([]zap.Field{zap.String("user", s.user), zap.String("action", action), zap.String("remote", clientIP(r))}, fields...)
	fields = append(fields, zap.String("result", rep.result()))
	if e, ok := rep.body.(apiError); ok {
		fields = append(fields, zap.String("error", e.Error))
	}
	c.lg.Info("console action", fields...)
}

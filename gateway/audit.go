package gateway

import (
	"context"
	"errors"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// The audit log (a feature etcd lacks): every request that changes auth
// state or logs in, and every request refused for auth reasons, is written
// to Config.Audit with who made it, from where, the method, the keys or
// names it targeted and the result. Passwords and tokens are never logged:
// the fields come from an explicit list per request type, not from
// printing requests.

// auditUnary is the unary interceptor that writes the audit log.
func (g *Gateway) auditUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if isAuthChange(info.FullMethod) || isAuthDenial(err) {
		g.audit(ctx, info.FullMethod, req, err)
	}
	return resp, err
}

// auditStream logs streams (watch, lease keep-alive) that ended in an auth
// refusal; a refused watch create is logged where it is refused.
func (g *Gateway) auditStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	err := handler(srv, ss)
	if isAuthDenial(err) {
		g.audit(ss.Context(), info.FullMethod, nil, err)
	}
	return err
}

// audit writes one audit record for a request.
func (g *Gateway) audit(ctx context.Context, method string, req any, err error) {
	fields := []zap.Field{zap.String("method", method)}
	if a, ok := req.(*pb.AuthenticateRequest); ok {
		fields = append(fields, zap.String("user", a.Name))
	} else if _, ai, aerr := g.requestAuth(ctx); aerr == nil {
		fields = append(fields, zap.String("user", ai.User))
	}
	if remote := remoteAddr(ctx); remote != "" {
		fields = append(fields, zap.String("remote", remote))
	}
	fields = append(fields, auditTarget(req)...)
	result := "ok"
	if err != nil {
		result = rpctypes.ErrorDesc(err)
	}
	fields = append(fields, zap.String("result", result))
	g.cfg.Audit.Info("audit", fields...)
}

// isAuthChange reports whether method logs in or changes auth state.
func isAuthChange(method string) bool {
	name, ok := strings.CutPrefix(method, "/etcdserverpb.Auth/")
	if !ok {
		return false
	}
	switch name {
	case "AuthStatus", "UserGet", "UserList", "RoleGet", "RoleList":
		return false
	}
	return true
}

// isAuthDenial reports whether err refused a request for auth reasons.
func isAuthDenial(err error) bool {
	if err == nil {
		return false
	}
	for _, e := range []error{rpctypes.ErrGRPCPermissionDenied, rpctypes.ErrGRPCUserEmpty,
		rpctypes.ErrGRPCInvalidAuthToken, rpctypes.ErrGRPCAuthFailed, errNoPasswordUser} {
		if errors.Is(err, e) || rpctypes.ErrorDesc(err) == rpctypes.ErrorDesc(e) {
			return true
		}
	}
	return false
}

// auditTarget is what a request names: keys for KV requests, users, roles
// and permission ranges for auth requests. Never a password.
func auditTarget(req any) []zap.Field {
	keys := func(k, end []byte) []zap.Field {
		f := []zap.Field{zap.ByteString("key", k)}
		if len(end) > 0 {
			f = append(f, zap.ByteString("range-end", end))
		}
		return f
	}
	switch r := req.(type) {
	case *pb.RangeRequest:
		return keys(r.Key, r.RangeEnd)
	case *pb.PutRequest:
		return keys(r.Key, nil)
	case *pb.DeleteRangeRequest:
		return keys(r.Key, r.RangeEnd)
	case *pb.TxnRequest:
		return []zap.Field{zap.Int("compares", len(r.Compare)), zap.Int("success-ops", len(r.Success)), zap.Int("failure-ops", len(r.Failure))}
	case *pb.WatchCreateRequest:
		return keys(r.Key, r.RangeEnd)
	case *pb.LeaseRevokeRequest:
		return []zap.Field{zap.Int64("lease", r.ID)}
	case *pb.LeaseTimeToLiveRequest:
		return []zap.Field{zap.Int64("lease", r.ID)}
	case *pb.AuthUserAddRequest:
		return []zap.Field{zap.String("target-user", r.Name)}
	case *pb.AuthUserDeleteRequest:
		return []zap.Field{zap.String("target-user", r.Name)}
	case *pb.AuthUserChangePasswordRequest:
		return []zap.Field{zap.String("target-user", r.Name)}
	case *pb.AuthUserGrantRoleRequest:
		return []zap.Field{zap.String("target-user", r.User), zap.String("role", r.Role)}
	case *pb.AuthUserRevokeRoleRequest:
		return []zap.Field{zap.String("target-user", r.Name), zap.String("role", r.Role)}
	case *pb.AuthUserGetRequest:
		return []zap.Field{zap.String("target-user", r.Name)}
	case *pb.AuthRoleAddRequest:
		return []zap.Field{zap.String("role", r.Name)}
	case *pb.AuthRoleDeleteRequest:
		return []zap.Field{zap.String("role", r.Role)}
	case *pb.AuthRoleGetRequest:
		return []zap.Field{zap.String("role", r.Role)}
	case *pb.AuthRoleGrantPermissionRequest:
		f := []zap.Field{zap.String("role", r.Name)}
		if r.Perm != nil {
			f = append(f, zap.String("perm", r.Perm.PermType.String()))
			f = append(f, keys(r.Perm.Key, r.Perm.RangeEnd)...)
		}
		return f
	case *pb.AuthRoleRevokePermissionRequest:
		return append([]zap.Field{zap.String("role", r.Role)}, keys(r.Key, r.RangeEnd)...)
	}
	return nil
}

// remoteAddr is the client's address. A JSON gateway request arrives over
// the member's in-process connection; grpc-gateway passes the HTTP
// client's IP as the last entry of x-forwarded-for, which is trusted
// only there (a network client could send any).
func remoteAddr(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	if p.Addr.Network() == "bufconn" {
		if xff := metadata.ValueFromIncomingContext(ctx, "x-forwarded-for"); len(xff) > 0 {
			parts := strings.Split(xff[len(xff)-1], ",")
			return strings.TrimSpace(parts[len(parts)-1])
		}
	}
	return p.Addr.String()
}

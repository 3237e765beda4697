package gateway

import (
	"context"
	"encoding/base64"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"golang.org/x/crypto/bcrypt"
)

// authServer implements etcd's Auth service. Every request goes through
// raft, as in etcd (the reads too, so they are linearizable); passwords
// are hashed here, before proposing, so no plain password reaches the log.
// AuthEnable, AuthDisable and Authenticate answer Unimplemented until
// enforcement is built: auth can be managed but not switched on yet.
type authServer struct {
	pb.UnimplementedAuthServer
	g *Gateway
}

// hash is etcd's API-layer step: bcrypt at --bcrypt-cost, base64 encoded.
func (g *Gateway) hash(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), g.cfg.BcryptCost)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(h), nil
}

func (s *authServer) AuthStatus(ctx context.Context, r *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error) {
	return proposeFor[*pb.AuthStatusResponse](ctx, s.g, &pb.InternalRaftRequest{AuthStatus: r})
}

func (s *authServer) UserAdd(ctx context.Context, r *pb.AuthUserAddRequest) (*pb.AuthUserAddResponse, error) {
	if r.Options == nil || !r.Options.NoPassword {
		h, err := s.g.hash(r.Password)
		if err != nil {
			return nil, err
		}
		r.HashedPassword, r.Password = h, ""
	}
	return proposeFor[*pb.AuthUserAddResponse](ctx, s.g, &pb.InternalRaftRequest{AuthUserAdd: r})
}

func (s *authServer) UserDelete(ctx context.Context, r *pb.AuthUserDeleteRequest) (*pb.AuthUserDeleteResponse, error) {
	return proposeFor[*pb.AuthUserDeleteResponse](ctx, s.g, &pb.InternalRaftRequest{AuthUserDelete: r})
}

func (s *authServer) UserChangePassword(ctx context.Context, r *pb.AuthUserChangePasswordRequest) (*pb.AuthUserChangePasswordResponse, error) {
	if r.Password != "" {
		h, err := s.g.hash(r.Password)
		if err != nil {
			return nil, err
		}
		r.HashedPassword, r.Password = h, ""
	}
	return proposeFor[*pb.AuthUserChangePasswordResponse](ctx, s.g, &pb.InternalRaftRequest{AuthUserChangePassword: r})
}

func (s *authServer) UserGrantRole(ctx context.Context, r *pb.AuthUserGrantRoleRequest) (*pb.AuthUserGrantRoleResponse, error) {
	return proposeFor[*pb.AuthUserGrantRoleResponse](ctx, s.g, &pb.InternalRaftRequest{AuthUserGrantRole: r})
}

func (s *authServer) UserRevokeRole(ctx context.Context, r *pb.AuthUserRevokeRoleRequest) (*pb.AuthUserRevokeRoleResponse, error) {
	return proposeFor[*pb.AuthUserRevokeRoleResponse](ctx, s.g, &pb.InternalRaftRequest{AuthUserRevokeRole: r})
}

func (s *authServer) UserGet(ctx context.Context, r *pb.AuthUserGetRequest) (*pb.AuthUserGetResponse, error) {
	return proposeFor[*pb.AuthUserGetResponse](ctx, s.g, &pb.InternalRaftRequest{AuthUserGet: r})
}

func (s *authServer) UserList(ctx context.Context, r *pb.AuthUserListRequest) (*pb.AuthUserListResponse, error) {
	return proposeFor[*pb.AuthUserListResponse](ctx, s.g, &pb.InternalRaftRequest{AuthUserList: r})
}

func (s *authServer) RoleAdd(ctx context.Context, r *pb.AuthRoleAddRequest) (*pb.AuthRoleAddResponse, error) {
	return proposeFor[*pb.AuthRoleAddResponse](ctx, s.g, &pb.InternalRaftRequest{AuthRoleAdd: r})
}

func (s *authServer) RoleDelete(ctx context.Context, r *pb.AuthRoleDeleteRequest) (*pb.AuthRoleDeleteResponse, error) {
	return proposeFor[*pb.AuthRoleDeleteResponse](ctx, s.g, &pb.InternalRaftRequest{AuthRoleDelete: r})
}

func (s *authServer) RoleGet(ctx context.Context, r *pb.AuthRoleGetRequest) (*pb.AuthRoleGetResponse, error) {
	return proposeFor[*pb.AuthRoleGetResponse](ctx, s.g, &pb.InternalRaftRequest{AuthRoleGet: r})
}

func (s *authServer) RoleList(ctx context.Context, r *pb.AuthRoleListRequest) (*pb.AuthRoleListResponse, error) {
	return proposeFor[*pb.AuthRoleListResponse](ctx, s.g, &pb.InternalRaftRequest{AuthRoleList: r})
}

func (s *authServer) RoleGrantPermission(ctx context.Context, r *pb.AuthRoleGrantPermissionRequest) (*pb.AuthRoleGrantPermissionResponse, error) {
	return proposeFor[*pb.AuthRoleGrantPermissionResponse](ctx, s.g, &pb.InternalRaftRequest{AuthRoleGrantPermission: r})
}

func (s *authServer) RoleRevokePermission(ctx context.Context, r *pb.AuthRoleRevokePermissionRequest) (*pb.AuthRoleRevokePermissionResponse, error) {
	return proposeFor[*pb.AuthRoleRevokePermissionResponse](ctx, s.g, &pb.InternalRaftRequest{AuthRoleRevokePermission: r})
}

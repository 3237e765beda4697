package gateway

import (
	"context"
	"encoding/base64"
	"errors"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"golang.org/x/crypto/bcrypt"

	"github.com/metastore/metastore/authactor"
)

// authServer implements etcd's Auth service. Every request goes through
// raft, as in etcd (the reads too, so they are linearizable), and the store
// checks at apply that its user may make it; passwords are hashed here,
// before proposing, so no plain password reaches the log.
type authServer struct {
	pb.UnimplementedAuthServer
	g *Gateway
}

// withBcryptSlot runs f, a bcrypt computation, when a slot is free.
func (g *Gateway) withBcryptSlot(ctx context.Context, f func()) error {
	select {
	case g.bcryptSlots <- struct{}{}:
	case <-ctx.Done():
		return g.ctxErr(ctx, ctx.Err())
	}
	defer func() { <-g.bcryptSlots }()
	f()
	return nil
}

// hash is etcd's API-layer step: bcrypt at --bcrypt-cost, base64 encoded.
func (g *Gateway) hash(ctx context.Context, password string) (string, error) {
	var h []byte
	var err error
	if serr := g.withBcryptSlot(ctx, func() { h, err = bcrypt.GenerateFromPassword([]byte(password), g.cfg.BcryptCost) }); serr != nil {
		return "", serr
	}
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(h), nil
}

func (s *authServer) AuthEnable(ctx context.Context, r *pb.AuthEnableRequest) (*pb.AuthEnableResponse, error) {
	return proposeFor[*pb.AuthEnableResponse](ctx, s.g, &pb.InternalRaftRequest{AuthEnable: r})
}

func (s *authServer) AuthDisable(ctx context.Context, r *pb.AuthDisableRequest) (*pb.AuthDisableResponse, error) {
	return proposeFor[*pb.AuthDisableResponse](ctx, s.g, &pb.InternalRaftRequest{AuthDisable: r})
}

// Authenticate is etcd's: the password is checked here, against the
// linearizably read user record (bcrypt, outside every actor), then the
// login goes through raft, where a simple token is assigned so that every
// member knows it. If the auth state changed in between, the check is done
// again.
func (s *authServer) Authenticate(ctx context.Context, r *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	if err := s.g.linearizableRead(ctx); err != nil {
		return nil, err
	}
	for {
		checked, err := s.g.checkPassword(ctx, r.Name, r.Password)
		if err != nil {
			return nil, err
		}
		ar := &pb.InternalAuthenticateRequest{Name: r.Name}
		if s.g.cfg.JWT == nil {
			ar.SimpleToken = authactor.NewTokenPrefix()
		}
		resp, err := proposeFor[*pb.AuthenticateResponse](ctx, s.g, &pb.InternalRaftRequest{Authenticate: ar})
		if err != nil {
			return nil, err
		}
		if s.g.cfg.JWT != nil {
			// Signed here, by the member the client asked: a JWT needs no
			// shared state, only the key.
			if resp.Token, err = s.g.cfg.JWT.Assign(r.Name, s.g.cfg.Store.Auth().Rev); err != nil {
				return nil, err
			}
		}
		if checked == s.g.cfg.Store.Auth().Rev {
			return resp, nil
		}
	}
}

// errNoPasswordUser is etcd's answer to a password login of a user created
// with --no-password (not an rpctypes error: it reaches clients as Unknown).
var errNoPasswordUser = errors.New("auth: authentication failed, password was given for no password user")

// checkPassword is etcd's CheckPassword: the auth revision it checked at,
// or why the user may not log in. Unknown users and wrong passwords get the
// same error; bcrypt's comparison takes the same time for any wrong
// password.
func (g *Gateway) checkPassword(ctx context.Context, name, password string) (uint64, error) {
	st := g.cfg.Store.Auth()
	if !st.Enabled {
		return 0, rpctypes.ErrGRPCAuthNotEnabled
	}
	u, err := g.cfg.Store.User(name)
	switch {
	case err != nil:
		return 0, err // Unknown with the store's error, as etcd answers a backend error
	case u == nil:
		return 0, rpctypes.ErrGRPCAuthFailed
	case u.Options != nil && u.Options.NoPassword:
		return 0, errNoPasswordUser
	}
	var mismatch error
	if err := g.withBcryptSlot(ctx, func() { mismatch = bcrypt.CompareHashAndPassword(u.Password, []byte(password)) }); err != nil {
		return 0, err
	}
	if mismatch != nil {
		return 0, rpctypes.ErrGRPCAuthFailed
	}
	return st.Rev, nil
}

func (s *authServer) AuthStatus(ctx context.Context, r *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error) {
	return proposeFor[*pb.AuthStatusResponse](ctx, s.g, &pb.InternalRaftRequest{AuthStatus: r})
}

func (s *authServer) UserAdd(ctx context.Context, r *pb.AuthUserAddRequest) (*pb.AuthUserAddResponse, error) {
	if r.Options == nil || !r.Options.NoPassword {
		h, err := s.g.hash(ctx, r.Password)
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
		h, err := s.g.hash(ctx, r.Password)
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

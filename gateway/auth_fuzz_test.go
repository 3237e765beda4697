package gateway

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"testing"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// FuzzAuth sends a sequence of Auth service requests decoded from the
// fuzz input (each a length byte then an InternalRaftRequest, whose auth
// fields name the calls to make; a request with a header is made with the
// token of the last successful Authenticate) through the handlers of a
// fresh world. Every answer must be a success or etcd's error (or, as in
// etcd, bcrypt's refusal of a password over 72 bytes), and every success
// must show, read back as root: a user or role added exists, a deleted
// one is gone, a granted role or permission is held, a revoked one not,
// auth is on after AuthEnable and off after AuthDisable, a login gives a
// token, and a changed password is the one that logs in.
func FuzzAuth(f *testing.F) {
	seq := func(reqs ...*pb.InternalRaftRequest) []byte { return joinMessages(f, reqs...) }
	root := &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "root", Password: "pw"}}
	rootRole := &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"}}
	enable := &pb.InternalRaftRequest{AuthEnable: &pb.AuthEnableRequest{}}
	login := &pb.InternalRaftRequest{Authenticate: &pb.InternalAuthenticateRequest{Name: "root", Password: "pw"}}
	asUser := &pb.RequestHeader{} // make the call with the last token
	for _, s := range [][]byte{
		seq(root, rootRole, enable, login,
			&pb.InternalRaftRequest{Header: asUser, AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "r"}},
			&pb.InternalRaftRequest{Header: asUser, AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "r",
				Perm: &authpb.Permission{PermType: authpb.Permission_READ, Key: []byte("a"), RangeEnd: []byte("b")}}},
			&pb.InternalRaftRequest{Header: asUser, AuthUserAdd: &pb.AuthUserAddRequest{Name: "u", Options: &authpb.UserAddOptions{NoPassword: true}}},
			&pb.InternalRaftRequest{Header: asUser, AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "u", Role: "r"}},
			&pb.InternalRaftRequest{Header: asUser, AuthDisable: &pb.AuthDisableRequest{}}),
		seq(root, enable, rootRole, enable, &pb.InternalRaftRequest{AuthStatus: &pb.AuthStatusRequest{}}, login,
			&pb.InternalRaftRequest{Header: asUser, AuthUserChangePassword: &pb.AuthUserChangePasswordRequest{Name: "root", Password: "new"}},
			&pb.InternalRaftRequest{Authenticate: &pb.InternalAuthenticateRequest{Name: "root", Password: "new"}}),
		seq(&pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "r"}},
			&pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "r", Perm: &authpb.Permission{Key: []byte("k"), RangeEnd: []byte{0}}}},
			&pb.InternalRaftRequest{AuthRoleRevokePermission: &pb.AuthRoleRevokePermissionRequest{Role: "r", Key: []byte("k"), RangeEnd: []byte{0}}},
			&pb.InternalRaftRequest{AuthRoleDelete: &pb.AuthRoleDeleteRequest{Role: "r"}},
			&pb.InternalRaftRequest{AuthUserDelete: &pb.AuthUserDeleteRequest{Name: "nobody"}}),
		seq(&pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "long", Password: string(make([]byte, 80))}},
			&pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{}},
			&pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "r", Perm: &authpb.Permission{Key: []byte("z"), RangeEnd: []byte("a")}}}),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		reqs := splitMessages(data, func() *pb.InternalRaftRequest { return new(pb.InternalRaftRequest) })
		w := newWorld(t)
		a := &authClient{w: w, s: &authServer{g: w.g}}
		for _, r := range reqs {
			a.do(r)
		}
		w.noFailures()
	})
}

// authClient makes a fuzz input's Auth calls and checks each.
type authClient struct {
	w     *world
	s     *authServer
	token string // from the last successful Authenticate
}

func (a *authClient) do(r *pb.InternalRaftRequest) {
	t := a.w.t
	t.Helper()
	ctx := a.w.ctx
	if r.Header != nil && a.token != "" {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(rpctypes.TokenFieldNameGRPC, a.token))
	}
	call := func(req proto.Message, f func() (proto.Message, error), after func()) {
		t.Helper()
		resp, err := f()
		switch {
		case errors.Is(err, bcrypt.ErrPasswordTooLong) || errors.Is(err, errNoPasswordUser):
			return // etcd answers these with the error itself
		case err != nil && (!etcdError(err) || errors.Is(err, rpctypes.ErrGRPCTimeout)):
			t.Fatalf("%s: %v is not an etcd error", prototext.Format(req), err)
		case err == nil && after != nil:
			if resp == nil {
				t.Fatalf("%s: no response", prototext.Format(req))
			}
			after()
		}
	}
	if q := r.AuthUserAdd; q != nil {
		call(q, func() (proto.Message, error) { return a.s.UserAdd(ctx, proto.Clone(q).(*pb.AuthUserAddRequest)) }, func() {
			if u := a.user(q.Name); u == nil || len(u.Roles) > 0 || !slices.Contains(a.users(), q.Name) {
				t.Fatalf("%s: user %q is %v", prototext.Format(q), q.Name, u)
			}
		})
	}
	if q := r.AuthRoleAdd; q != nil {
		call(q, func() (proto.Message, error) { return a.s.RoleAdd(ctx, q) }, func() {
			if ro := a.role(q.Name); ro == nil || len(ro.Perm) > 0 || !slices.Contains(a.roles(), q.Name) {
				t.Fatalf("%s: role %q is %v", prototext.Format(q), q.Name, ro)
			}
		})
	}
	if q := r.AuthUserGrantRole; q != nil {
		call(q, func() (proto.Message, error) { return a.s.UserGrantRole(ctx, q) }, func() {
			if u := a.user(q.User); u == nil || !slices.Contains(u.Roles, q.Role) {
				t.Fatalf("%s: user is %v", prototext.Format(q), u)
			}
		})
	}
	if q := r.AuthRoleGrantPermission; q != nil {
		call(q, func() (proto.Message, error) { return a.s.RoleGrantPermission(ctx, q) }, func() {
			ro := a.role(q.Name)
			if ro == nil || !slices.ContainsFunc(ro.Perm, func(p *authpb.Permission) bool {
				return p.PermType == q.Perm.PermType && string(p.Key) == string(q.Perm.Key) && string(p.RangeEnd) == string(q.Perm.RangeEnd)
			}) && q.Name != "root" {
				t.Fatalf("%s: role is %v", prototext.Format(q), ro)
			}
		})
	}
	if q := r.AuthEnable; q != nil {
		call(q, func() (proto.Message, error) { return a.s.AuthEnable(ctx, q) }, func() {
			if !a.w.reader.Auth().Enabled {
				t.Fatal("AuthEnable succeeded, auth is off")
			}
		})
	}
	if q := r.Authenticate; q != nil {
		ar := &pb.AuthenticateRequest{Name: q.Name, Password: q.Password}
		call(ar, func() (proto.Message, error) {
			resp, err := a.s.Authenticate(ctx, ar)
			if err == nil {
				a.token = resp.Token
			}
			return resp, err
		}, func() {
			if _, ok := a.w.g.cfg.Tokens.User(a.token); !ok {
				t.Fatalf("%s: token %q is not valid", prototext.Format(ar), a.token)
			}
		})
	}
	if q := r.AuthStatus; q != nil {
		call(q, func() (proto.Message, error) { return a.s.AuthStatus(ctx, q) }, nil)
	}
	if q := r.AuthUserGet; q != nil {
		call(q, func() (proto.Message, error) { return a.s.UserGet(ctx, q) }, nil)
	}
	if q := r.AuthUserList; q != nil {
		call(q, func() (proto.Message, error) { return a.s.UserList(ctx, q) }, nil)
	}
	if q := r.AuthRoleGet; q != nil {
		call(q, func() (proto.Message, error) { return a.s.RoleGet(ctx, q) }, nil)
	}
	if q := r.AuthRoleList; q != nil {
		call(q, func() (proto.Message, error) { return a.s.RoleList(ctx, q) }, nil)
	}
	if q := r.AuthUserChangePassword; q != nil {
		call(q, func() (proto.Message, error) {
			return a.s.UserChangePassword(ctx, proto.Clone(q).(*pb.AuthUserChangePasswordRequest))
		}, func() {
			// The password, or else the hash the client sent (as etcd).
			u, err := a.w.reader.User(q.Name)
			switch {
			case err != nil:
				t.Fatalf("%s: read the user: %v", prototext.Format(q), err)
			case u == nil:
				t.Fatalf("%s: the user is gone", prototext.Format(q))
			case u.Options != nil && u.Options.NoPassword:
			case q.Password != "" && bcrypt.CompareHashAndPassword(u.Password, []byte(q.Password)) != nil,
				q.Password == "" && base64.StdEncoding.EncodeToString(u.Password) != q.HashedPassword:
				t.Fatalf("%s: the new password does not match", prototext.Format(q))
			}
		})
	}
	if q := r.AuthRoleRevokePermission; q != nil {
		call(q, func() (proto.Message, error) { return a.s.RoleRevokePermission(ctx, q) }, func() {
			ro := a.role(q.Role)
			if ro == nil || slices.ContainsFunc(ro.Perm, func(p *authpb.Permission) bool {
				return string(p.Key) == string(q.Key) && string(p.RangeEnd) == string(q.RangeEnd)
			}) && q.Role != "root" {
				t.Fatalf("%s: role is %v", prototext.Format(q), ro)
			}
		})
	}
	if q := r.AuthUserRevokeRole; q != nil {
		call(q, func() (proto.Message, error) { return a.s.UserRevokeRole(ctx, q) }, func() {
			if u := a.user(q.Name); u == nil || slices.Contains(u.Roles, q.Role) {
				t.Fatalf("%s: user is %v", prototext.Format(q), u)
			}
		})
	}
	if q := r.AuthRoleDelete; q != nil {
		call(q, func() (proto.Message, error) { return a.s.RoleDelete(ctx, q) }, func() {
			if a.role(q.Role) != nil || slices.Contains(a.roles(), q.Role) {
				t.Fatalf("%s: the role is still there", prototext.Format(q))
			}
			for _, name := range a.users() {
				if slices.Contains(a.user(name).Roles, q.Role) {
					t.Fatalf("%s: user %q still has it", prototext.Format(q), name)
				}
			}
		})
	}
	if q := r.AuthUserDelete; q != nil {
		call(q, func() (proto.Message, error) { return a.s.UserDelete(ctx, q) }, func() {
			if a.user(q.Name) != nil || slices.Contains(a.users(), q.Name) {
				t.Fatalf("%s: the user is still there", prototext.Format(q))
			}
		})
	}
	if q := r.AuthDisable; q != nil {
		call(q, func() (proto.Message, error) { return a.s.AuthDisable(ctx, q) }, func() {
			if a.w.reader.Auth().Enabled {
				t.Fatal("AuthDisable succeeded, auth is on")
			}
		})
	}
}

// asRoot proposes an auth read as root (the check passes whenever auth is
// on: root then exists and holds the root role).
func (a *authClient) asRoot(r *pb.InternalRaftRequest) (proto.Message, error) {
	r.Header = a.w.reader.RootHeader()
	res, err := a.w.g.propose(context.Background(), r)
	return res.Resp, err
}

func (a *authClient) user(name string) *pb.AuthUserGetResponse {
	resp, err := a.asRoot(&pb.InternalRaftRequest{AuthUserGet: &pb.AuthUserGetRequest{Name: name}})
	if err != nil {
		return nil
	}
	return resp.(*pb.AuthUserGetResponse)
}

func (a *authClient) role(name string) *pb.AuthRoleGetResponse {
	resp, err := a.asRoot(&pb.InternalRaftRequest{AuthRoleGet: &pb.AuthRoleGetRequest{Role: name}})
	if err != nil {
		return nil
	}
	return resp.(*pb.AuthRoleGetResponse)
}

func (a *authClient) users() []string {
	resp, err := a.asRoot(&pb.InternalRaftRequest{AuthUserList: &pb.AuthUserListRequest{}})
	if err != nil {
		a.w.t.Fatal(err)
	}
	return resp.(*pb.AuthUserListResponse).Users
}

func (a *authClient) roles() []string {
	resp, err := a.asRoot(&pb.InternalRaftRequest{AuthRoleList: &pb.AuthRoleListRequest{}})
	if err != nil {
		a.w.t.Fatal(err)
	}
	return resp.(*pb.AuthRoleListResponse).Roles
}

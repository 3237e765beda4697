package console

import (
	"context"
	"net/http"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
)

// The auth view: users, roles and their permissions, as the logged-in
// user may read them (root: everything; another user: their own user and
// roles, as etcd allows), and for root the calls that change them. Each is
// the etcd Auth RPC of the same name, checked and audited by the member.

const maxAuthObjects = 500

type permView struct {
	Type     string `json:"type"` // READ, WRITE, READWRITE
	Key      []byte `json:"key"`
	RangeEnd []byte `json:"rangeEnd,omitempty"`
}

type roleView struct {
	Name  string     `json:"name"`
	Perms []permView `json:"perms"`
}

type userView struct {
	Name  string   `json:"name"`
	Roles []string `json:"roles"`
}

type authView struct {
	Enabled bool       `json:"enabled"`
	Users   []userView `json:"users"`
	Roles   []roleView `json:"roles"`
	// Partial: the user may not list every user and role (not root), so
	// this is their own user and roles.
	Partial bool `json:"partial,omitempty"`
}

func (c *Console) serveAuth(_ http.ResponseWriter, r *http.Request, s *session) reply {
	ctx, cancel := asUser(r, s, rpcTimeout)
	defer cancel()
	ac := pb.NewAuthClient(c.cfg.Conn)
	st, err := ac.AuthStatus(ctx, &pb.AuthStatusRequest{})
	if err != nil {
		return c.fail(s, err)
	}
	out := authView{Enabled: st.Enabled, Users: []userView{}, Roles: []roleView{}}
	var users, roles []string
	if ul, err := ac.UserList(ctx, &pb.AuthUserListRequest{}); err == nil {
		users = ul.Users
		rl, err := ac.RoleList(ctx, &pb.AuthRoleListRequest{})
		if err != nil {
			return c.fail(s, err)
		}
		roles = rl.Roles
	} else if s.user != "" && rpcReply(err).status == http.StatusForbidden {
		out.Partial, users = true, []string{s.user}
	} else {
		return c.fail(s, err)
	}
	for _, name := range users[:min(len(users), maxAuthObjects)] {
		u, err := ac.UserGet(ctx, &pb.AuthUserGetRequest{Name: name})
		if err != nil {
			return c.fail(s, err)
		}
		out.Users = append(out.Users, userView{Name: name, Roles: u.Roles})
		if out.Partial {
			roles = u.Roles
		}
	}
	for _, name := range roles[:min(len(roles), maxAuthObjects)] {
		rv, err := c.role(ctx, ac, name)
		if err != nil {
			return c.fail(s, err)
		}
		out.Roles = append(out.Roles, rv)
	}
	return ok(out)
}

func (c *Console) role(ctx context.Context, ac pb.AuthClient, name string) (roleView, error) {
	r, err := ac.RoleGet(ctx, &pb.AuthRoleGetRequest{Role: name})
	if err != nil {
		return roleView{}, err
	}
	rv := roleView{Name: name, Perms: []permView{}}
	for _, p := range r.Perm {
		rv.Perms = append(rv.Perms, permView{Type: p.PermType.String(), Key: p.Key, RangeEnd: p.RangeEnd})
	}
	return rv, nil
}

// authRequest is every auth action's body; each uses its own fields.
// Passwords are never logged.
type authRequest struct {
	Name     string `json:"name"`
	Password string `json:"password"`
	Role     string `json:"role"`
	Type     string `json:"type"` // a permission's: READ, WRITE, READWRITE
	Key      []byte `json:"key"`
	RangeEnd []byte `json:"rangeEnd"`
}

// authActions are the Auth RPCs the UI offers, by the {action} of
// POST api/auth/{action}.
var authActions = map[string]func(context.Context, pb.AuthClient, *authRequest) error{
	"user-add": func(ctx context.Context, ac pb.AuthClient, r *authRequest) error {
		_, err := ac.UserAdd(ctx, &pb.AuthUserAddRequest{Name: r.Name, Password: r.Password, Options: &authpb.UserAddOptions{NoPassword: r.Password == ""}})
		return err
	},
	"user-delete": func(ctx context.Context, ac pb.AuthClient, r *authRequest) error {
		_, err := ac.UserDelete(ctx, &pb.AuthUserDeleteRequest{Name: r.Name})
		return err
	},
	"user-password": func(ctx context.Context, ac pb.AuthClient, r *authRequest) error {
		_, err := ac.UserChangePassword(ctx, &pb.AuthUserChangePasswordRequest{Name: r.Name, Password: r.Password})
		return err
	},
	"grant-role": func(ctx context.Context, ac pb.AuthClient, r *authRequest) error {
		_, err := ac.UserGrantRole(ctx, &pb.AuthUserGrantRoleRequest{User: r.Name, Role: r.Role})
		return err
	},
	"revoke-role": func(ctx context.Context, ac pb.AuthClient, r *authRequest) error {
		_, err := ac.UserRevokeRole(ctx, &pb.AuthUserRevokeRoleRequest{Name: r.Name, Role: r.Role})
		return err
	},
	"role-add": func(ctx context.Context, ac pb.AuthClient, r *authRequest) error {
		_, err := ac.RoleAdd(ctx, &pb.AuthRoleAddRequest{Name: r.Role})
		return err
	},
	"role-delete": func(ctx context.Context, ac pb.AuthClient, r *authRequest) error {
		_, err := ac.RoleDelete(ctx, &pb.AuthRoleDeleteRequest{Role: r.Role})
		return err
	},
	"grant-permission": func(ctx context.Context, ac pb.AuthClient, r *authRequest) error {
		_, err := ac.RoleGrantPermission(ctx, &pb.AuthRoleGrantPermissionRequest{Name: r.Role,
			Perm: &authpb.Permission{PermType: authpb.Permission_Type(authpb.Permission_Type_value[r.Type]), Key: r.Key, RangeEnd: r.RangeEnd}})
		return err
	},
	"revoke-permission": func(ctx context.Context, ac pb.AuthClient, r *authRequest) error {
		_, err := ac.RoleRevokePermission(ctx, &pb.AuthRoleRevokePermissionRequest{Role: r.Role, Key: r.Key, RangeEnd: r.RangeEnd})
		return err
	},
	"enable": func(ctx context.Context, ac pb.AuthClient, _ *authRequest) error {
		_, err := ac.AuthEnable(ctx, &pb.AuthEnableRequest{})
		return err
	},
	"disable": func(ctx context.Context, ac pb.AuthClient, _ *authRequest) error {
		_, err := ac.AuthDisable(ctx, &pb.AuthDisableRequest{})
		return err
	},
}

// serveAuthAction runs one auth action as the session's user.
func (c *Console) serveAuthAction(_ http.ResponseWriter, r *http.Request, s *session) reply {
	action := r.PathValue("action")
	do, known := authActions[action]
	if !known {
		return errorReply(http.StatusNotFound, "unknown auth action "+action)
	}
	var req authRequest
	if err := decode(r, &req); err != nil {
		return badRequest(err.Error())
	}
	if _, known := authpb.Permission_Type_value[req.Type]; req.Type != "" && !known {
		return badRequest("unknown permission type " + req.Type)
	}
	ctx, cancel := asUser(r, s, rpcTimeout)
	defer cancel()
	rep := ok(struct{}{})
	if err := do(ctx, pb.NewAuthClient(c.cfg.Conn), &req); err != nil {
		rep = c.fail(s, err)
	}
	countRequest("auth-"+action, rep.result())
	c.logAction(r, s, "auth-"+action, rep, zap.String("target-user", req.Name), zap.String("role", req.Role),
		zap.ByteString("key", req.Key), zap.ByteString("range-end", req.RangeEnd))
	return rep
}

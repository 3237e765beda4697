package storeactor

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/authactor"
)

// Auth state — users, roles with their key permissions, the enabled flag
// and the auth revision — is replicated state like the keys: every Auth
// request is a raft entry applied here, in the same batch, as etcd applies
// them in its backend. Users are 'u' name -> authpb.User (the password a
// bcrypt hash made by the gateway before proposing), roles 'o' name ->
// authpb.Role. Every change bumps the auth revision, which tokens will
// carry so that a changed user or role invalidates them.

var (
	metaAuthRev     = []byte("mauthrev")
	metaAuthEnabled = []byte("mauthenabled") // 1 byte: 1 when auth is on
)

const (
	rootUser = "root"
	rootRole = "root"
)

func userKey(name string) []byte { return append([]byte{prefixUser}, name...) }
func roleKey(name string) []byte { return append([]byte{prefixRole}, name...) }

// readProto reads key's record into m, and whether there is one.
func readProto(r pebble.Reader, key []byte, m proto.Message) (bool, error) {
	v, ok, err := getValue(r, key)
	if err != nil || !ok {
		return false, err
	}
	if err := proto.Unmarshal(v, m); err != nil {
		return false, fmt.Errorf("%w: %v", errCorruptRecord, err)
	}
	return true, nil
}

// getProto is readProto for the Store's own reads (see mustRead).
func getProto(r pebble.Reader, key []byte, m proto.Message) bool {
	return mustRead(readProto(r, key, m))
}

func putProto(w pebble.Writer, key []byte, m proto.Message) {
	b, err := proto.Marshal(m)
	must(err)
	must(w.Set(key, b, nil))
}

// readUser reads a user record, or nil when there is none.
func readUser(r pebble.Reader, name string) (*authpb.User, error) {
	u := new(authpb.User)
	if ok, err := readProto(r, userKey(name), u); !ok {
		return nil, err
	}
	return u, nil
}

// getUser is readUser for the Store's own reads (see mustRead).
func getUser(r pebble.Reader, name string) *authpb.User { return mustRead(readUser(r, name)) }

func getRole(r pebble.Reader, name string) *authpb.Role {
	ro := new(authpb.Role)
	if !getProto(r, roleKey(name), ro) {
		return nil
	}
	return ro
}

// names lists the keys under a one-byte prefix, in order.
func names(r pebble.Reader, prefix byte) []string {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	must(err)
	defer it.Close()
	var out []string
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, string(it.Key()[1:]))
	}
	must(it.Error())
	return out
}

// authRevision is the current auth revision: 1 in a fresh store, as etcd.
func authRevision(r pebble.Reader) uint64 {
	b, ok, err := getValue(r, metaAuthRev)
	must(err)
	if !ok {
		return 1
	}
	return binary.BigEndian.Uint64(b)
}

func bumpAuthRevision(b *pebble.Batch) {
	must(putU64(b, metaAuthRev, authRevision(b)+1))
}

// authEnabled reports whether auth is on.
func authEnabled(r pebble.Reader) bool {
	v, ok, err := getValue(r, metaAuthEnabled)
	must(err)
	return ok && len(v) == 1 && v[0] == 1
}

// loadAuthState builds the auth state requests are checked against from
// the records in r.
func loadAuthState(r pebble.Reader) *authactor.State {
	var users []*authpb.User
	for _, name := range names(r, prefixUser) {
		users = append(users, getUser(r, name))
	}
	roles := map[string]*authpb.Role{}
	for _, name := range names(r, prefixRole) {
		roles[name] = getRole(r, name)
	}
	return &authactor.State{Enabled: authEnabled(r), Rev: authRevision(r), Perms: authactor.NewPermissions(users, roles)}
}

// authEnable is etcd's AuthEnable: a no-op when on; else the root user
// must exist and hold the root role. It does not change the auth revision.
func authEnable(b *pebble.Batch) (*pb.AuthEnableResponse, error) {
	if !authEnabled(b) {
		u := getUser(b, rootUser)
		switch {
		case u == nil:
			return nil, rpctypes.ErrGRPCRootUserNotExist
		case !hasRole(u, rootRole):
			return nil, rpctypes.ErrGRPCRootRoleNotExist
		}
		must(b.Set(metaAuthEnabled, []byte{1}, nil))
	}
	return &pb.AuthEnableResponse{Header: &pb.ResponseHeader{}}, nil
}

// authDisable is etcd's AuthDisable: it bumps the auth revision, and every
// token ends (the caller drops them).
func authDisable(b *pebble.Batch) *pb.AuthDisableResponse {
	if authEnabled(b) {
		must(b.Set(metaAuthEnabled, []byte{0}, nil))
		bumpAuthRevision(b)
	}
	return &pb.AuthDisableResponse{Header: &pb.ResponseHeader{}}
}

// authenticate is the apply half of etcd's Authenticate (the gateway has
// checked the password): a simple token is the proposer's random prefix and
// the entry's index, so that every member assigns the same one. With JWTs
// (no prefix) the gateway signs the token; none is assigned here.
func authenticate(b *pebble.Batch, r *pb.InternalAuthenticateRequest, index uint64) (*pb.AuthenticateResponse, error) {
	if !authEnabled(b) {
		return nil, rpctypes.ErrGRPCAuthNotEnabled
	}
	u := getUser(b, r.Name)
	if u == nil || (u.Options != nil && u.Options.NoPassword) {
		return nil, rpctypes.ErrGRPCAuthFailed
	}
	resp := &pb.AuthenticateResponse{Header: &pb.ResponseHeader{}}
	if r.SimpleToken != "" {
		resp.Token = fmt.Sprintf("%s.%d", r.SimpleToken, index)
	}
	return resp, nil
}

func hasRole(u *authpb.User, role string) bool {
	i := sort.SearchStrings(u.Roles, role)
	return i < len(u.Roles) && u.Roles[i] == role
}

// User returns the stored user record, or nil (the gateway checks
// passwords against it), or why it could not be read.
func (r *Reader) User(name string) (*authpb.User, error) {
	u, err := readUser(r.db, name)
	return u, r.readError("user", err)
}

// Auth returns the auth state as of the last published batch.
func (r *Reader) Auth() *authactor.State { return r.auth.Load() }

// applyAuth applies one Auth request; ok is false when e's is not one.
// Every change bumps the auth revision (AuthEnable excepted, as in etcd);
// reads and no-op grants do not. After a change the store's auth state is
// rebuilt at once, so the next entry of the batch is checked against it,
// and the token changes it implies are queued for the batch's end.
func (s *Store) applyAuth(b *pebble.Batch, e *Entry, out *batchOut) (resp proto.Message, err error, ok bool) {
	r := e.Req
	resp, err, ok = applyAuthRecords(b, r)
	if !ok {
		switch {
		case r.AuthEnable != nil:
			resp, err = authEnable(b)
		case r.AuthDisable != nil:
			resp = authDisable(b)
		case r.Authenticate != nil:
			var ar *pb.AuthenticateResponse
			if ar, err = authenticate(b, r.Authenticate, e.Index); err == nil {
				resp = ar
				if ar.Token != "" {
					out.tokenOps = append(out.tokenOps, authactor.TokenOp{Kind: authactor.AssignToken, Token: ar.Token, User: r.Authenticate.Name})
				}
			}
		default:
			return nil, nil, false
		}
	}
	if err != nil {
		return nil, err, true
	}
	switch {
	case r.AuthDisable != nil:
		out.tokenOps = append(out.tokenOps, authactor.TokenOp{Kind: authactor.DropAll})
	case r.AuthUserDelete != nil:
		out.tokenOps = append(out.tokenOps, authactor.TokenOp{Kind: authactor.DropUser, User: r.AuthUserDelete.Name})
	case r.AuthUserChangePassword != nil:
		out.tokenOps = append(out.tokenOps, authactor.TokenOp{Kind: authactor.DropUser, User: r.AuthUserChangePassword.Name})
	}
	if authEnabled(b) != s.auth.Enabled || authRevision(b) != s.auth.Rev {
		s.auth = loadAuthState(b)
	}
	return resp, nil, true
}

// refusedByAuth is etcd's auth applier: it checks a request, at apply, as
// the user and auth revision its proposer put in the header. Writes are
// checked here (not only at the gateway) so that a permission revoked by
// an earlier entry is in force for every later one.
func (s *Store) refusedByAuth(b *pebble.Batch, r *pb.InternalRaftRequest) error {
	st := s.auth
	if !st.Enabled {
		return nil
	}
	ai := authactor.Info{User: r.Header.GetUsername(), Rev: r.Header.GetAuthRevision()}
	keys := func(id int64) ([][]byte, error) { return mustRead(attachedKeys(b, id)), nil }
	switch {
	case needsAdmin(r):
		return st.CheckAdmin(ai)
	case r.Put != nil:
		return st.CheckPut(ai, r.Put, keys)
	case r.DeleteRange != nil:
		return st.CheckDelete(ai, r.DeleteRange)
	case r.Txn != nil:
		return st.CheckTxn(ai, r.Txn, keys)
	case r.Range != nil:
		return st.CheckOp(ai, r.Range.Key, r.Range.RangeEnd, false)
	case r.LeaseRevoke != nil:
		return st.CheckLeaseWrite(ai, r.LeaseRevoke.ID, keys)
	case r.AuthUserGet != nil:
		// Anyone may read their own user record.
		if err := st.CheckAdmin(ai); err != nil && r.AuthUserGet.Name != ai.User {
			return err
		}
	case r.AuthRoleGet != nil:
		// Anyone may read a role they hold.
		if err := st.CheckAdmin(ai); err != nil && !userHasRole(b, ai.User, r.AuthRoleGet.Role) {
			return err
		}
	}
	return nil
}

func userHasRole(b pebble.Reader, user, role string) bool {
	u := getUser(b, user)
	return u != nil && hasRole(u, role)
}

// needsAdmin lists the requests only a root-role user may make (etcd's
// needAdminPermission).
func needsAdmin(r *pb.InternalRaftRequest) bool {
	return r.AuthEnable != nil || r.AuthDisable != nil ||
		r.AuthUserAdd != nil || r.AuthUserDelete != nil || r.AuthUserChangePassword != nil ||
		r.AuthUserGrantRole != nil || r.AuthUserRevokeRole != nil || r.AuthUserList != nil ||
		r.AuthRoleAdd != nil || r.AuthRoleDelete != nil || r.AuthRoleGrantPermission != nil ||
		r.AuthRoleRevokePermission != nil || r.AuthRoleList != nil
}

// applyAuthRecords applies the requests that read or change users and
// roles; ok is false when r is none of them.
func applyAuthRecords(b *pebble.Batch, r *pb.InternalRaftRequest) (resp proto.Message, err error, ok bool) {
	switch {
	case r.AuthStatus != nil:
		return &pb.AuthStatusResponse{Header: &pb.ResponseHeader{}, Enabled: authEnabled(b), AuthRevision: authRevision(b)}, nil, true
	case r.AuthUserAdd != nil:
		resp, err = userAdd(b, r.AuthUserAdd)
	case r.AuthUserDelete != nil:
		resp, err = userDelete(b, r.AuthUserDelete)
	case r.AuthUserChangePassword != nil:
		resp, err = userChangePassword(b, r.AuthUserChangePassword)
	case r.AuthUserGrantRole != nil:
		resp, err = userGrantRole(b, r.AuthUserGrantRole)
	case r.AuthUserRevokeRole != nil:
		resp, err = userRevokeRole(b, r.AuthUserRevokeRole)
	case r.AuthUserGet != nil:
		u := getUser(b, r.AuthUserGet.Name)
		if u == nil {
			return nil, rpctypes.ErrGRPCUserNotFound, true
		}
		return &pb.AuthUserGetResponse{Header: &pb.ResponseHeader{}, Roles: u.Roles}, nil, true
	case r.AuthUserList != nil:
		return &pb.AuthUserListResponse{Header: &pb.ResponseHeader{}, Users: names(b, prefixUser)}, nil, true
	case r.AuthRoleAdd != nil:
		resp, err = roleAdd(b, r.AuthRoleAdd)
	case r.AuthRoleDelete != nil:
		resp, err = roleDelete(b, r.AuthRoleDelete)
	case r.AuthRoleGet != nil:
		ro := getRole(b, r.AuthRoleGet.Role)
		if ro == nil {
			return nil, rpctypes.ErrGRPCRoleNotFound, true
		}
		perms := ro.KeyPermission
		if r.AuthRoleGet.Role == rootRole {
			perms = []*authpb.Permission{{PermType: authpb.Permission_READWRITE, Key: []byte{}, RangeEnd: []byte{0}}}
		}
		return &pb.AuthRoleGetResponse{Header: &pb.ResponseHeader{}, Perm: perms}, nil, true
	case r.AuthRoleList != nil:
		return &pb.AuthRoleListResponse{Header: &pb.ResponseHeader{}, Roles: names(b, prefixRole)}, nil, true
	case r.AuthRoleGrantPermission != nil:
		resp, err = roleGrantPermission(b, r.AuthRoleGrantPermission)
	case r.AuthRoleRevokePermission != nil:
		resp, err = roleRevokePermission(b, r.AuthRoleRevokePermission)
	default:
		return nil, nil, false
	}
	return resp, err, true
}

// setPassword stores the hash the gateway made (base64) as u's password,
// unless u was created without one.
func setPassword(u *authpb.User, hashed string) error {
	if u.Options != nil && u.Options.NoPassword {
		return nil
	}
	h, err := base64.StdEncoding.DecodeString(hashed)
	if err != nil || len(h) == 0 {
		return rpctypes.ErrGRPCInvalidAuthMgmt
	}
	u.Password = h
	return nil
}

func userAdd(b *pebble.Batch, r *pb.AuthUserAddRequest) (*pb.AuthUserAddResponse, error) {
	if r.Name == "" {
		return nil, rpctypes.ErrGRPCUserEmpty
	}
	if getUser(b, r.Name) != nil {
		return nil, rpctypes.ErrGRPCUserAlreadyExist
	}
	opts := r.Options
	if opts == nil {
		opts = &authpb.UserAddOptions{}
	}
	u := &authpb.User{Name: []byte(r.Name), Options: opts}
	if err := setPassword(u, r.HashedPassword); err != nil {
		return nil, err
	}
	putProto(b, userKey(r.Name), u)
	bumpAuthRevision(b)
	return &pb.AuthUserAddResponse{Header: &pb.ResponseHeader{}}, nil
}

func userDelete(b *pebble.Batch, r *pb.AuthUserDeleteRequest) (*pb.AuthUserDeleteResponse, error) {
	if authEnabled(b) && r.Name == rootUser {
		return nil, rpctypes.ErrGRPCInvalidAuthMgmt
	}
	if getUser(b, r.Name) == nil {
		return nil, rpctypes.ErrGRPCUserNotFound
	}
	must(b.Delete(userKey(r.Name), nil))
	bumpAuthRevision(b)
	return &pb.AuthUserDeleteResponse{Header: &pb.ResponseHeader{}}, nil
}

func userChangePassword(b *pebble.Batch, r *pb.AuthUserChangePasswordRequest) (*pb.AuthUserChangePasswordResponse, error) {
	u := getUser(b, r.Name)
	if u == nil {
		return nil, rpctypes.ErrGRPCUserNotFound
	}
	if err := setPassword(u, r.HashedPassword); err != nil {
		return nil, err
	}
	putProto(b, userKey(r.Name), u)
	bumpAuthRevision(b)
	return &pb.AuthUserChangePasswordResponse{Header: &pb.ResponseHeader{}}, nil
}

func userGrantRole(b *pebble.Batch, r *pb.AuthUserGrantRoleRequest) (*pb.AuthUserGrantRoleResponse, error) {
	u := getUser(b, r.User)
	if u == nil {
		return nil, rpctypes.ErrGRPCUserNotFound
	}
	if r.Role != rootRole && getRole(b, r.Role) == nil {
		return nil, rpctypes.ErrGRPCRoleNotFound
	}
	if hasRole(u, r.Role) {
		return &pb.AuthUserGrantRoleResponse{Header: &pb.ResponseHeader{}}, nil // already granted
	}
	u.Roles = append(u.Roles, r.Role)
	sort.Strings(u.Roles)
	putProto(b, userKey(r.User), u)
	bumpAuthRevision(b)
	return &pb.AuthUserGrantRoleResponse{Header: &pb.ResponseHeader{}}, nil
}

func userRevokeRole(b *pebble.Batch, r *pb.AuthUserRevokeRoleRequest) (*pb.AuthUserRevokeRoleResponse, error) {
	if authEnabled(b) && r.Name == rootUser && r.Role == rootRole {
		return nil, rpctypes.ErrGRPCInvalidAuthMgmt
	}
	u := getUser(b, r.Name)
	if u == nil {
		return nil, rpctypes.ErrGRPCUserNotFound
	}
	if !removeRole(u, r.Role) {
		return nil, rpctypes.ErrGRPCRoleNotGranted
	}
	putProto(b, userKey(r.Name), u)
	bumpAuthRevision(b)
	return &pb.AuthUserRevokeRoleResponse{Header: &pb.ResponseHeader{}}, nil
}

// removeRole takes role from u's roles and reports whether it was there.
func removeRole(u *authpb.User, role string) bool {
	kept := u.Roles[:0:0]
	for _, r := range u.Roles {
		if r != role {
			kept = append(kept, r)
		}
	}
	removed := len(kept) != len(u.Roles)
	u.Roles = kept
	return removed
}

func roleAdd(b *pebble.Batch, r *pb.AuthRoleAddRequest) (*pb.AuthRoleAddResponse, error) {
	if r.Name == "" {
		return nil, rpctypes.ErrGRPCRoleEmpty
	}
	if getRole(b, r.Name) != nil {
		return nil, rpctypes.ErrGRPCRoleAlreadyExist
	}
	putProto(b, roleKey(r.Name), &authpb.Role{Name: []byte(r.Name)})
	bumpAuthRevision(b)
	return &pb.AuthRoleAddResponse{Header: &pb.ResponseHeader{}}, nil
}

// roleDelete removes the role and takes it from every user that had it.
func roleDelete(b *pebble.Batch, r *pb.AuthRoleDeleteRequest) (*pb.AuthRoleDeleteResponse, error) {
	if authEnabled(b) && r.Role == rootRole {
		return nil, rpctypes.ErrGRPCInvalidAuthMgmt
	}
	if getRole(b, r.Role) == nil {
		return nil, rpctypes.ErrGRPCRoleNotFound
	}
	must(b.Delete(roleKey(r.Role), nil))
	for _, name := range names(b, prefixUser) {
		if u := getUser(b, name); removeRole(u, r.Role) {
			putProto(b, userKey(name), u)
		}
	}
	bumpAuthRevision(b)
	return &pb.AuthRoleDeleteResponse{Header: &pb.ResponseHeader{}}, nil
}

// validPermissionRange is etcd's rule: a key, and an end that is empty (one
// key), "\x00" (from key) or after the key.
func validPermissionRange(key, end []byte) bool {
	switch {
	case len(key) == 0:
		return false
	case len(end) == 0, len(end) == 1 && end[0] == 0:
		return true
	}
	return bytes.Compare(key, end) < 0
}

func roleGrantPermission(b *pebble.Batch, r *pb.AuthRoleGrantPermissionRequest) (*pb.AuthRoleGrantPermissionResponse, error) {
	if r.Perm == nil {
		return nil, rpctypes.ErrGRPCPermissionNotGiven
	}
	if !validPermissionRange(r.Perm.Key, r.Perm.RangeEnd) {
		return nil, rpctypes.ErrGRPCInvalidAuthMgmt
	}
	ro := getRole(b, r.Name)
	if ro == nil {
		return nil, rpctypes.ErrGRPCRoleNotFound
	}
	perms := ro.KeyPermission
	i := sort.Search(len(perms), func(i int) bool { return bytes.Compare(perms[i].Key, r.Perm.Key) >= 0 })
	if i < len(perms) && bytes.Equal(perms[i].Key, r.Perm.Key) && bytes.Equal(perms[i].RangeEnd, r.Perm.RangeEnd) {
		perms[i].PermType = r.Perm.PermType
	} else {
		ro.KeyPermission = append(perms, &authpb.Permission{Key: r.Perm.Key, RangeEnd: r.Perm.RangeEnd, PermType: r.Perm.PermType})
		sort.SliceStable(ro.KeyPermission, func(i, j int) bool {
			return bytes.Compare(ro.KeyPermission[i].Key, ro.KeyPermission[j].Key) < 0
		})
	}
	putProto(b, roleKey(r.Name), ro)
	bumpAuthRevision(b)
	return &pb.AuthRoleGrantPermissionResponse{Header: &pb.ResponseHeader{}}, nil
}

func roleRevokePermission(b *pebble.Batch, r *pb.AuthRoleRevokePermissionRequest) (*pb.AuthRoleRevokePermissionResponse, error) {
	ro := getRole(b, r.Role)
	if ro == nil {
		return nil, rpctypes.ErrGRPCRoleNotFound
	}
	kept := ro.KeyPermission[:0:0]
	for _, p := range ro.KeyPermission {
		if !bytes.Equal(p.Key, r.Key) || !bytes.Equal(p.RangeEnd, r.RangeEnd) {
			kept = append(kept, p)
		}
	}
	if len(kept) == len(ro.KeyPermission) {
		return nil, rpctypes.ErrGRPCPermissionNotGranted
	}
	ro.KeyPermission = kept
	putProto(b, roleKey(r.Role), ro)
	bumpAuthRevision(b)
	return &pb.AuthRoleRevokePermissionResponse{Header: &pb.ResponseHeader{}}, nil
}

// RootHeader is the header of a request the member makes itself (expired
// lease revokes, alarms): as root at the current auth revision, as etcd
// does, since with auth on the store checks every request's user.
func (r *Reader) RootHeader() *pb.RequestHeader {
	return &pb.RequestHeader{Username: "root", AuthRevision: r.Auth().Rev}
}

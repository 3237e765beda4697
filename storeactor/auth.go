package storeactor

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"
)

// Auth state — users, roles with their key permissions, the enabled flag
// and the auth revision — is replicated state like the keys: every Auth
// request is a raft entry applied here, in the same batch, as etcd applies
// them in its backend. Users are 'u' name -> authpb.User (the password a
// bcrypt hash made by the gateway before proposing), roles 'o' name ->
// authpb.Role. Every change bumps the auth revision, which tokens will
// carry so that a changed user or role invalidates them.

var metaAuthRev = []byte("mauthrev")

const (
	rootUser = "root"
	rootRole = "root"
)

func userKey(name string) []byte { return append([]byte{prefixUser}, name...) }
func roleKey(name string) []byte { return append([]byte{prefixRole}, name...) }

func getProto(r pebble.Reader, key []byte, m proto.Message) bool {
	v, ok, err := getValue(r, key)
	must(err)
	if ok {
		must(proto.Unmarshal(v, m))
	}
	return ok
}

func putProto(w pebble.Writer, key []byte, m proto.Message) {
	b, err := proto.Marshal(m)
	must(err)
	must(w.Set(key, b, nil))
}

func getUser(r pebble.Reader, name string) *authpb.User {
	u := new(authpb.User)
	if !getProto(r, userKey(name), u) {
		return nil
	}
	return u
}

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

// authEnabled reports whether auth is on (AuthEnable comes with the
// enforcement; until then it is never on).
func authEnabled(pebble.Reader) bool { return false }

// applyAuth applies one Auth request; ok is false when r is not one.
// Every change bumps the auth revision; reads and no-op grants do not.
func applyAuth(b *pebble.Batch, r *pb.InternalRaftRequest) (resp proto.Message, err error, ok bool) {
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
	i := sort.SearchStrings(u.Roles, r.Role)
	if i < len(u.Roles) && u.Roles[i] == r.Role {
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

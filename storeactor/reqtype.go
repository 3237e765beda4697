package storeactor

import pb "go.etcd.io/etcd/api/v3/etcdserverpb"

// requestTypes are etcd's names of the raft request types, as its metrics
// label them (etcdserver's getRequestType), indexed by RequestType.
var requestTypes = [...]string{
	"Unknown", "Range", "Put", "DeleteRange", "Txn", "Compaction", "LeaseGrant", "LeaseRevoke",
	"LeaseCheckpoint", "Alarm", "Authenticate", "AuthEnable", "AuthDisable", "AuthStatus",
	"AuthUserAdd", "AuthUserDelete", "AuthUserChangePassword", "AuthUserGrantRole", "AuthUserGet",
	"AuthUserRevokeRole", "AuthRoleAdd", "AuthRoleGrantPermission", "AuthRoleGet",
	"AuthRoleRevokePermission", "AuthRoleDelete", "AuthUserList", "AuthRoleList",
	"ClusterVersionSet", "ClusterMemberAttrSet", "DowngradeInfoSet", "DowngradeVersionTest",
}

// NumRequestTypes is the number of values RequestType returns.
const NumRequestTypes = len(requestTypes)

// RequestTypeName is etcd's name of request type t (see RequestType).
func RequestTypeName(t int) string { return requestTypes[t] }

// RequestType numbers r's type, in [0, NumRequestTypes), without
// reflection: metrics keep one series per type and resolve it once.
func RequestType(r *pb.InternalRaftRequest) int {
	switch {
	case r.Range != nil:
		return 1
	case r.Put != nil:
		return 2
	case r.DeleteRange != nil:
		return 3
	case r.Txn != nil:
		return 4
	case r.Compaction != nil:
		return 5
	case r.LeaseGrant != nil:
		return 6
	case r.LeaseRevoke != nil:
		return 7
	case r.LeaseCheckpoint != nil:
		return 8
	case r.Alarm != nil:
		return 9
	case r.Authenticate != nil:
		return 10
	case r.AuthEnable != nil:
		return 11
	case r.AuthDisable != nil:
		return 12
	case r.AuthStatus != nil:
		return 13
	case r.AuthUserAdd != nil:
		return 14
	case r.AuthUserDelete != nil:
		return 15
	case r.AuthUserChangePassword != nil:
		return 16
	case r.AuthUserGrantRole != nil:
		return 17
	case r.AuthUserGet != nil:
		return 18
	case r.AuthUserRevokeRole != nil:
		return 19
	case r.AuthRoleAdd != nil:
		return 20
	case r.AuthRoleGrantPermission != nil:
		return 21
	case r.AuthRoleGet != nil:
		return 22
	case r.AuthRoleRevokePermission != nil:
		return 23
	case r.AuthRoleDelete != nil:
		return 24
	case r.AuthUserList != nil:
		return 25
	case r.AuthRoleList != nil:
		return 26
	case r.ClusterVersionSet != nil:
		return 27
	case r.ClusterMemberAttrSet != nil:
		return 28
	case r.DowngradeInfoSet != nil:
		return 29
	case r.DowngradeVersionTest != nil:
		return 30
	}
	return 0
}

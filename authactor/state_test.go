package authactor_test

import (
	"errors"
	"testing"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/metastore/metastore/authactor"
)

// testState: alice may read and write a/ and read r; root is root; auth
// revision 7.
func testState(enabled bool) *authactor.State {
	roles := map[string]*authpb.Role{"ra": {Name: []byte("ra"), KeyPermission: []*authpb.Permission{
		perm(authpb.Permission_READWRITE, "a/", "a0"), perm(authpb.Permission_READ, "r", ""),
	}}}
	users := []*authpb.User{{Name: []byte("alice"), Roles: []string{"ra"}}, {Name: []byte("root"), Roles: []string{"root"}}}
	return &authactor.State{Enabled: enabled, Rev: 7, Perms: authactor.NewPermissions(users, roles)}
}

func errIs(t *testing.T, what string, got, want error) {
	t.Helper()
	if (want == nil) != (got == nil) || (want != nil && !errors.Is(got, want)) {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

// etcd's checks, in its order: no user, an old auth revision (a token or
// request header from before an auth change), an unknown user, a missing
// permission.
func TestStateChecksInEtcdsOrder(t *testing.T) {
	st := testState(true)
	alice := authactor.Info{User: "alice", Rev: 7}
	errIs(t, "anonymous", st.CheckOp(authactor.Info{}, []byte("a/1"), nil, false), rpctypes.ErrGRPCUserEmpty)
	errIs(t, "old revision", st.CheckOp(authactor.Info{User: "alice", Rev: 6}, []byte("a/1"), nil, false), rpctypes.ErrGRPCAuthOldRevision)
	errIs(t, "old revision before denial", st.CheckOp(authactor.Info{User: "alice", Rev: 6}, []byte("b"), nil, true), rpctypes.ErrGRPCAuthOldRevision)
	errIs(t, "unknown user", st.CheckOp(authactor.Info{User: "mallory", Rev: 7}, []byte("a/1"), nil, false), rpctypes.ErrGRPCPermissionDenied)
	errIs(t, "allowed", st.CheckOp(alice, []byte("a/1"), nil, true), nil)
	errIs(t, "denied", st.CheckOp(alice, []byte("r"), nil, true), rpctypes.ErrGRPCPermissionDenied)
	errIs(t, "everything", st.CheckOp(alice, []byte{0}, []byte{0}, false), rpctypes.ErrGRPCPermissionDenied)

	errIs(t, "admin anonymous", st.CheckAdmin(authactor.Info{}), rpctypes.ErrGRPCUserEmpty)
	errIs(t, "admin unknown", st.CheckAdmin(authactor.Info{User: "mallory", Rev: 7}), rpctypes.ErrGRPCUserNotFound)
	errIs(t, "admin alice", st.CheckAdmin(alice), rpctypes.ErrGRPCPermissionDenied)
	errIs(t, "admin root", st.CheckAdmin(authactor.Info{User: "root", Rev: 7}), nil)

	// With auth off nothing is checked.
	off := testState(false)
	errIs(t, "off: anonymous write", off.CheckOp(authactor.Info{}, []byte("zzz"), nil, true), nil)
	errIs(t, "off: admin", off.CheckAdmin(authactor.Info{}), nil)
	errIs(t, "off: user", off.CheckUser(authactor.Info{}), nil)
}

// A txn is checked on every compare and on both branches, nested txns
// included, whichever branch would run; a put's lease keys need write.
func TestStateCheckTxnAndLeases(t *testing.T) {
	st := testState(true)
	alice := authactor.Info{User: "alice", Rev: 7}
	put := func(k string, lease int64) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Lease: lease}}}
	}
	get := func(k string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(k)}}}
	}
	nested := func(ops ...*pb.RequestOp) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Failure: ops}}}
	}
	errUnreadable := errors.New("disk read error")
	keys := func(id int64) ([][]byte, error) {
		switch id {
		case 5:
			return [][]byte{[]byte("a/x"), []byte("b")}, nil // b is not alice's
		case 9:
			return nil, errUnreadable
		}
		return [][]byte{[]byte("a/y")}, nil
	}
	cases := []struct {
		name string
		txn  *pb.TxnRequest
		want error
	}{
		{"allowed", &pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("r")}}, Success: []*pb.RequestOp{put("a/1", 0)}, Failure: []*pb.RequestOp{get("r")}}, nil},
		{"compare outside", &pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("b")}}}, rpctypes.ErrGRPCPermissionDenied},
		{"failure branch outside", &pb.TxnRequest{Success: []*pb.RequestOp{put("a/1", 0)}, Failure: []*pb.RequestOp{put("r", 0)}}, rpctypes.ErrGRPCPermissionDenied},
		{"nested outside", &pb.TxnRequest{Success: []*pb.RequestOp{nested(get("a/1"), get("z"))}}, rpctypes.ErrGRPCPermissionDenied},
		{"lease with a foreign key", &pb.TxnRequest{Success: []*pb.RequestOp{put("a/1", 5)}}, rpctypes.ErrGRPCPermissionDenied},
		{"lease with own keys", &pb.TxnRequest{Success: []*pb.RequestOp{put("a/1", 6)}}, nil},
	}
	for _, c := range cases {
		errIs(t, c.name, st.CheckTxn(alice, c.txn, keys), c.want)
	}
	errIs(t, "revoke lease with a foreign key", st.CheckLeaseWrite(alice, 5, keys), rpctypes.ErrGRPCPermissionDenied)
	errIs(t, "root revokes anything", st.CheckLeaseWrite(authactor.Info{User: "root", Rev: 7}, 5, keys), nil)
	errIs(t, "read lease keys", st.CheckLeaseRead(alice, 6, keys), nil)
	errIs(t, "lease keys that cannot be read", st.CheckLeaseRead(alice, 9, keys), errUnreadable)
	errIs(t, "root needs no lease keys", st.CheckLeaseWrite(authactor.Info{User: "root", Rev: 7}, 9, keys), nil)
	errIs(t, "put with prev_kv needs read", st.CheckPut(alice, &pb.PutRequest{Key: []byte("r"), PrevKv: true}, keys), rpctypes.ErrGRPCPermissionDenied)
	errIs(t, "delete with prev_kv", st.CheckDelete(alice, &pb.DeleteRangeRequest{Key: []byte("a/"), RangeEnd: []byte("a0"), PrevKv: true}), nil)
}

package storeactor_test

import (
	"encoding/base64"
	"errors"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/authactor"
	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
)

// as makes r a request of user at the store's current auth revision, the
// way the gateway stamps proposals.
func (h *harness) as(user string, r *pb.InternalRaftRequest) *pb.InternalRaftRequest {
	r.Header = &pb.RequestHeader{Username: user, AuthRevision: h.reader.Auth().Rev}
	return r
}

// enableAuth creates root and alice (readwrite on a/) and turns auth on.
func (h *harness) enableAuth() {
	h.t.Helper()
	hash := base64.StdEncoding.EncodeToString([]byte("not-a-real-bcrypt-hash"))
	for _, r := range []*pb.InternalRaftRequest{
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: "root", HashedPassword: hash}},
		{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"}},
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: "alice", HashedPassword: hash}},
		{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "ra"}},
		{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "ra",
			Perm: &authpb.Permission{PermType: authpb.Permission_READWRITE, Key: []byte("a/"), RangeEnd: []byte("a0")}}},
		{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "alice", Role: "ra"}},
		{AuthEnable: &pb.AuthEnableRequest{}},
	} {
		h.must(r)
	}
}

// Writes are checked at apply as the header's user and auth revision, and
// an auth change is in force for the very next entry of the same batch.
func TestAuthCheckedAtApply(t *testing.T) {
	h := newHarness(t)
	h.enableAuth()
	st := h.reader.Auth()
	if !st.Enabled || st.Rev < 2 {
		t.Fatalf("published auth state after enable: %+v", st)
	}
	if res := h.do(putReq("a/1", "v")); !errors.Is(res.Err, rpctypes.ErrGRPCUserEmpty) {
		t.Fatalf("anonymous put: %v", res.Err)
	}
	if res := h.do(h.as("alice", putReq("b", "v"))); !errors.Is(res.Err, rpctypes.ErrGRPCPermissionDenied) {
		t.Fatalf("alice outside her prefix: %v", res.Err)
	}
	if res := h.do(h.as("alice", &pb.InternalRaftRequest{AuthUserList: &pb.AuthUserListRequest{}})); !errors.Is(res.Err, rpctypes.ErrGRPCPermissionDenied) {
		t.Fatalf("alice lists users: %v", res.Err)
	}
	// One batch: alice writes, root takes her permission away, alice
	// writes again (at the revision she saw), and again at the new one.
	rev := h.reader.Auth().Rev
	stamp := func(user string, rev uint64, r *pb.InternalRaftRequest) *pb.InternalRaftRequest {
		r.Header = &pb.RequestHeader{Username: user, AuthRevision: rev}
		return r
	}
	res := h.apply(
		stamp("alice", rev, putReq("a/1", "v1")),
		stamp("root", rev, &pb.InternalRaftRequest{AuthRoleRevokePermission: &pb.AuthRoleRevokePermissionRequest{Role: "ra", Key: []byte("a/"), RangeEnd: []byte("a0")}}),
		stamp("alice", rev, putReq("a/2", "v2")),
		stamp("alice", rev+1, putReq("a/3", "v3")),
	)
	for i, want := range []error{nil, nil, rpctypes.ErrGRPCAuthOldRevision, rpctypes.ErrGRPCPermissionDenied} {
		if (want == nil) != (res[i].Err == nil) || (want != nil && !errors.Is(res[i].Err, want)) {
			t.Errorf("entry %d: %v, want %v", i, res[i].Err, want)
		}
	}
	if got := h.get("a/", 0); len(got) != 0 {
		t.Fatalf("unexpected keys at a/: %v", got)
	}
	if got := h.rng(&pb.RangeRequest{Key: []byte("a/"), RangeEnd: []byte("a0")}).Kvs; len(got) != 1 {
		t.Fatalf("keys under a/: %v, want only a/1", got)
	}
	// The state survives a restart of the actor.
	h.restart()
	if st := h.reader.Auth(); !st.Enabled || st.Rev != rev+1 {
		t.Fatalf("auth state after restart: %+v, want enabled at %d", st, rev+1)
	}
	if res := h.do(h.as("alice", putReq("a/4", "v"))); !errors.Is(res.Err, rpctypes.ErrGRPCPermissionDenied) {
		t.Fatalf("after restart: %v", res.Err)
	}
}

// A login's token is assigned at apply from the entry (prefix.index) by the
// token actor, which answers the client only once the token is in effect.
func TestAuthenticateAssignsTokenBeforeAnswering(t *testing.T) {
	h := newHarness(t)
	tokens := h.kit.NewProbe()
	h.cfg.Tokens = tokens.PID()
	h.restart()
	h.enableAuth()

	h.index++
	reply := make(chan actors.Result, 1)
	h.applyRaw(storeactor.Entry{Index: h.index, Term: 1, Reply: reply, Req: &pb.InternalRaftRequest{
		Authenticate: &pb.InternalAuthenticateRequest{Name: "alice", SimpleToken: "abcdefghijklmnop"},
	}})
	msg := testkit.Expect[*authactor.Apply](tokens, wait)
	want := authactor.TokenOp{Kind: authactor.AssignToken, Token: "abcdefghijklmnop." + strconv.FormatUint(h.index, 10), User: "alice"}
	if len(msg.Ops) != 1 || msg.Ops[0] != want {
		t.Fatalf("token ops %+v, want %+v", msg.Ops, want)
	}
	select {
	case r := <-reply:
		t.Fatalf("client answered before the token was in effect: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
	msg.Then()
	r := <-reply
	if r.Err != nil || r.Resp.(*pb.AuthenticateResponse).Token != want.Token {
		t.Fatalf("login answer %+v", r)
	}
	expectApplied(t, h)

	// A password change drops the user's tokens, again before answering.
	h.index++
	h.applyRaw(storeactor.Entry{Index: h.index, Term: 1, Reply: reply, Req: h.as("root", &pb.InternalRaftRequest{
		AuthUserChangePassword: &pb.AuthUserChangePasswordRequest{Name: "alice", HashedPassword: base64.StdEncoding.EncodeToString([]byte("x"))},
	})})
	msg = testkit.Expect[*authactor.Apply](tokens, wait)
	if drop := (authactor.TokenOp{Kind: authactor.DropUser, User: "alice"}); len(msg.Ops) != 1 || msg.Ops[0] != drop {
		t.Fatalf("token ops %+v, want %+v", msg.Ops, drop)
	}
	msg.Then()
	if r := <-reply; r.Err != nil {
		t.Fatalf("password change: %v", r.Err)
	}
	expectApplied(t, h)
}

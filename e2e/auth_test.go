package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// TestAuthManagement runs the same user/role script through the real
// etcdctl against MetaStore and the reference etcd and requires the same
// outputs and errors, with auth off (TestAuthEnforcementScenario turns it
// on).
func TestAuthManagement(t *testing.T) {
	ms := StartMetaStore(t)
	ref := StartEtcd(t)
	steps := [][]string{
		{"auth", "status"},
		{"user", "add", "alice:pw1"},
		{"user", "add", "alice:pw2"},
		{"user", "add", "bob", "--no-password"},
		{"user", "add", "root:rootpw"},
		{"auth", "status", "-w", "json"},
		{"role", "add", "r1"},
		{"role", "add", "r1"},
		{"role", "add", "r2"},
		{"role", "grant-permission", "r1", "readwrite", "foo"},
		{"role", "grant-permission", "r1", "read", "--prefix", "bar/"},
		{"role", "grant-permission", "r1", "write", "a", "c"},
		{"role", "grant-permission", "r1", "read", "foo"}, // overwrite foo's type
		{"role", "grant-permission", "r1", "read", "--from-key", "z"},
		{"role", "grant-permission", "r1", "read", "c", "a"}, // empty range
		{"role", "grant-permission", "nope", "read", "x"},
		{"role", "get", "r1"},
		{"role", "get", "r1", "-w", "json"},
		{"role", "get", "nope"},
		{"user", "grant-role", "alice", "r1"},
		{"user", "grant-role", "alice", "r2"},
		{"user", "grant-role", "alice", "r1"}, // again: no change
		{"user", "grant-role", "alice", "nope"},
		{"user", "grant-role", "carol", "r1"},
		{"user", "grant-role", "root", "root"}, // the root role needs no RoleAdd
		{"user", "get", "alice"},
		{"user", "get", "alice", "--detail"},
		{"user", "get", "alice", "-w", "json"},
		{"user", "get", "carol"},
		{"user", "list"},
		{"role", "list"},
		{"role", "revoke-permission", "r1", "foo"},
		{"role", "revoke-permission", "r1", "foo"},
		{"role", "revoke-permission", "r1", "a", "c"},
		{"role", "get", "r1"},
		{"user", "revoke-role", "alice", "r2"},
		{"user", "revoke-role", "alice", "r2"},
		{"user", "passwd", "alice", "--interactive=false"},
		{"user", "passwd", "carol", "--interactive=false"},
		{"role", "delete", "r1"},
		{"role", "delete", "r1"},
		{"user", "get", "alice"},
		{"user", "delete", "bob"},
		{"user", "delete", "bob"},
		{"user", "list", "-w", "json"},
		{"auth", "status", "-w", "json"},
	}
	for i, args := range steps {
		stdin := ""
		if args[0] == "user" && args[1] == "passwd" {
			stdin = "newpw\n"
		}
		mo, me, merr := etcdctlStdin(t, ms.Endpoint(), stdin, args...)
		eo, ee, eerr := etcdctlStdin(t, ref.Endpoint(), stdin, args...)
		mo, eo = normIDs(mo), normIDs(eo)
		if mo != eo || errText(me) != errText(ee) || (merr == nil) != (eerr == nil) {
			t.Fatalf("step %d %v differs\netcd:      out %q err %q (%v)\nmetastore: out %q err %q (%v)",
				i, args, eo, errText(ee), eerr, mo, errText(me), merr)
		}
	}
}

// TestAuthStateSurvivesRestart: users and roles are replicated state in
// pebble, there after a kill -9.
func TestAuthStateSurvivesRestart(t *testing.T) {
	ms := StartMetaStore(t)
	auth := pb.NewAuthClient(ms.Client(t).ActiveConnection())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := auth.UserAdd(ctx, &pb.AuthUserAddRequest{Name: "u", Password: "secret"}); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.RoleAdd(ctx, &pb.AuthRoleAddRequest{Name: "ro"}); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.RoleGrantPermission(ctx, &pb.AuthRoleGrantPermissionRequest{Name: "ro",
		Perm: &authpb.Permission{PermType: authpb.Permission_READ, Key: []byte("k")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.UserGrantRole(ctx, &pb.AuthUserGrantRoleRequest{User: "u", Role: "ro"}); err != nil {
		t.Fatal(err)
	}
	before, err := auth.AuthStatus(ctx, &pb.AuthStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ms.Kill()
	ms.Restart(t)
	auth = pb.NewAuthClient(ms.Client(t).ActiveConnection())
	u, err := auth.UserGet(ctx, &pb.AuthUserGetRequest{Name: "u"})
	if err != nil || strings.Join(u.Roles, ",") != "ro" {
		t.Fatalf("user after restart: %v %v", u, err)
	}
	r, err := auth.RoleGet(ctx, &pb.AuthRoleGetRequest{Role: "ro"})
	if err != nil || len(r.Perm) != 1 || string(r.Perm[0].Key) != "k" {
		t.Fatalf("role after restart: %v %v", r, err)
	}
	after, err := auth.AuthStatus(ctx, &pb.AuthStatusRequest{})
	if err != nil || after.AuthRevision != before.AuthRevision {
		t.Fatalf("auth revision %v -> %v (%v)", before.AuthRevision, after.GetAuthRevision(), err)
	}
	// There is no root user: auth cannot be turned on.
	if _, err := auth.AuthEnable(ctx, &pb.AuthEnableRequest{}); !errors.Is(err, rpctypes.ErrGRPCRootUserNotExist) {
		t.Fatalf("AuthEnable without root: %v", err)
	}
}

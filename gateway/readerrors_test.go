package gateway

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/leaseactor"
	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
)

// faultyMember serves a Gateway on loopback over a real Store, on a DB
// that fails every read of an sstable while the returned toggle is on,
// and a real Lessor; a stand-in raft confirms read indexes at once and
// answers Status. setup is applied to the store first, then flushed to
// sstables, where the faults are.
func faultyMember(t *testing.T, setup ...*pb.InternalRaftRequest) (*grpc.ClientConn, *errorfs.Toggle) {
	t.Helper()
	faults := testkit.TableReadFaults()
	db, err := storeactor.OpenPebbleFS(errorfs.Wrap(vfs.NewMem(), faults), "/db", storeactor.WithoutBlockCache())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reader, err := storeactor.NewReader(db)
	if err != nil {
		t.Fatal(err)
	}
	kit := testkit.New(t) // after the DB: its cleanup stops the actors first
	leases := kit.Spawn(leaseactor.New(leaseactor.Config{
		Store: reader, ID: 1, Clock: testkit.NewFakeClock(time.Unix(0, 0)),
		Primary:   func() (uint64, bool) { return 1, true },
		ReadIndex: func(reply chan<- error) { reply <- nil },
		Propose:   func(*pb.InternalRaftRequest, chan<- actors.Result) {},
	}))
	applier := kit.NewProbe()
	// The lessor loads the leases when it starts, which may be later than
	// Spawn returns: it must have read the empty DB before the faults can
	// be on, or it never becomes primary (it retries only on a tick).
	started := make(chan []int64, 1)
	applier.Request(leases, &leaseactor.List{Reply: started})
	<-started
	store := kit.Spawn(storeactor.New(storeactor.Config{DB: db, Leases: leases}, reader))
	for i, r := range setup {
		reply := make(chan actors.Result, 1)
		applier.Request(store, &storeactor.Apply{Entries: []storeactor.Entry{{Index: uint64(i + 1), Term: 1, Req: r, Reply: reply}}})
		if res := <-reply; res.Err != nil {
			t.Fatalf("%v: %v", r, res.Err)
		}
		testkit.Expect[*storeactor.Applied](applier, 5*time.Second)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	raft := kit.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *raftactor.ReadsWaiting:
			m.Batch.Finish(nil) // stays published: every later read is answered at once too
		case *raftactor.Status:
			actors.Reply(m.Reply, raftactor.StatusInfo{ID: 1, Lead: 1, Term: 1})
		}
	}))
	view := new(raftactor.ViewRef)
	view.Store(&raftactor.View{ID: 1, ClusterID: 2, Lead: 1, Term: 1})
	g := New(Config{
		Root: kit.Root(), Raft: raft, RaftView: view, Store: reader, Leases: leases, IDs: raftactor.NewIDGen(1, time.Now()),
		MaxRequestBytes: 1 << 20, RequestTimeout: 5 * time.Second, Members: func() []*pb.Member { return []*pb.Member{{ID: 1}} },
		DBSize: func() int64 { return 0 }, BcryptCost: bcrypt.MinCost,
	})
	return serve(t, g), faults
}

// wantReadError checks that err is what a client gets for a read the
// store failed: Unknown with the store's error, as etcd answers an error
// it has no code for.
func wantReadError(t *testing.T, what string, err error) {
	t.Helper()
	if status.Code(err) != codes.Unknown || !strings.Contains(err.Error(), errorfs.ErrInjected.Error()) {
		t.Fatalf("%s while the disk fails: %v, want Unknown with the read error", what, err)
	}
}

// Reads a handler makes of the store beyond Range and Txn — a lease's
// keys for TimeToLive, the alarms for Status — fail that RPC with the
// disk's error instead of panicking; the member serves on (a TimeToLive
// that reads nothing from pebble is answered meanwhile), and the same
// RPCs answer once the disk reads again.
func TestLeaseAndStatusReadErrorsReachClients(t *testing.T) {
	conn, faults := faultyMember(t,
		&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 7, TTL: 60}},
		&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("v"), Lease: 7}},
		&pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE}},
	)
	lease, maint := pb.NewLeaseClient(conn), pb.NewMaintenanceClient(conn)
	ctx := context.Background()
	withKeys := &pb.LeaseTimeToLiveRequest{ID: 7, Keys: true}

	faults.On()
	_, err := lease.LeaseTimeToLive(ctx, withKeys)
	wantReadError(t, "TimeToLive with keys", err)
	_, err = maint.Status(ctx, &pb.StatusRequest{})
	wantReadError(t, "Status", err)
	if resp, err := lease.LeaseTimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: 7}); err != nil || resp.GrantedTTL != 60 {
		t.Fatalf("TimeToLive without keys while the disk fails: %v, %v", resp, err)
	}
	faults.Off()

	resp, err := lease.LeaseTimeToLive(ctx, withKeys)
	if err != nil || len(resp.Keys) != 1 || string(resp.Keys[0]) != "k" {
		t.Fatalf("TimeToLive with keys after the fault: %v, %v", resp, err)
	}
	st, err := maint.Status(ctx, &pb.StatusRequest{})
	if err != nil || len(st.Errors) != 1 || !strings.Contains(st.Errors[0], "NOSPACE") {
		t.Fatalf("Status after the fault: %v, %v", st, err)
	}
}

// A login whose user record cannot be read fails with the disk's error
// (not "authentication failed", and no panic); once the disk reads, the
// same login is checked against the record.
func TestAuthenticateReadErrorReachesClient(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	conn, faults := faultyMember(t,
		&pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "root", HashedPassword: base64.StdEncoding.EncodeToString(hash), Options: &authpb.UserAddOptions{}}},
		&pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"}},
		&pb.InternalRaftRequest{AuthEnable: &pb.AuthEnableRequest{}},
	)
	auth := pb.NewAuthClient(conn)
	ctx := context.Background()
	wrong := &pb.AuthenticateRequest{Name: "root", Password: "wrong"}

	faults.On()
	_, err = auth.Authenticate(ctx, wrong)
	wantReadError(t, "Authenticate", err)
	faults.Off()

	if _, err := auth.Authenticate(ctx, wrong); status.Code(err) != codes.InvalidArgument || rpctypes.ErrorDesc(err) != rpctypes.ErrorDesc(rpctypes.ErrGRPCAuthFailed) {
		t.Fatalf("Authenticate with a wrong password after the fault: %v, want %v", err, rpctypes.ErrGRPCAuthFailed)
	}
}

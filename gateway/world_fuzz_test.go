package gateway

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3/raftpb"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/authactor"
	"github.com/metastore/metastore/leaseactor"
	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
	"github.com/metastore/metastore/watchactor"
)

// The fuzz targets of this package call the gRPC handlers themselves, with
// requests decoded from the fuzz input, against a world where everything
// but raft is real: a Store actor on in-memory pebble, its Reader, a watch
// Hub, a Lessor, the simple-token actor (on a fake clock that never moves)
// and a Gateway configured as node/ does. Raft is replaced
// by loopRaft, which commits every proposal at once, alone: the store
// decodes the proposal's bytes as a follower would (Req is not handed
// over), so the encoding is on the path too.
//
// Each fuzz input gets a fresh world, so a failure reproduces from its
// input alone.

// selfID and clusterID are the lone member's ids.
const (
	selfID    = 0x1001
	clusterID = 0xc1

	// fuzzMaxTxnOps is etcd's default --max-txn-ops.
	fuzzMaxTxnOps = 128
)

// wait bounds every wait for something that must happen; passing inputs
// never reach it.
const wait = 5 * time.Second

type world struct {
	t      *testing.T
	kit    *testkit.Kit
	events *testkit.Events
	clock  *testkit.FakeClock // never advanced: lease TTLs stay as granted
	reader *storeactor.Reader
	store  *actor.PID
	g      *Gateway
	ctx    context.Context
}

// newWorld builds a lone member's world: the member itself is in the
// membership (a bootstrap conf change at term 1), nothing else.
func newWorld(t *testing.T) *world {
	t.Helper()
	db, err := storeactor.OpenPebble("/db", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return newWorldOn(t, db)
}

// newWorldOn is newWorld on a DB the caller opened (and closes after the
// test: open it before calling, so that the actors stop first).
func newWorldOn(t *testing.T, db *pebble.DB) *world {
	t.Helper()
	w := &world{t: t, kit: testkit.New(t), ctx: context.Background(), clock: testkit.NewFakeClock(time.Unix(1e9, 0))}
	w.events = w.kit.CaptureEvents()
	var err error
	if w.reader, err = storeactor.NewReader(db); err != nil {
		t.Fatal(err)
	}
	hub := w.kit.Spawn(watchactor.New(watchactor.Config{Store: w.reader, Clock: w.clock}))
	w.started(hub)
	// A lone leader: every quorum round confirms at once.
	leases := w.kit.Spawn(leaseactor.New(leaseactor.Config{ID: selfID, Store: w.reader, Clock: w.clock,
		Primary:   func() (uint64, bool) { return 2, true },
		ReadIndex: func(reply chan<- error) { reply <- nil },
		Propose:   func(*pb.InternalRaftRequest, chan<- actors.Result) {}}))
	tokensProps, tokens := authactor.NewSimpleTokens(authactor.TokensConfig{Clock: w.clock})
	w.store = w.kit.Spawn(storeactor.New(storeactor.Config{DB: db, Watch: hub, Leases: leases, Tokens: w.kit.Spawn(tokensProps),
		MinLeaseTTL: 2, MaxLearners: 1}, w.reader))
	raft := w.kit.Spawn(actor.PropsFromProducer(func() actor.Actor { return &loopRaft{store: w.store} }))
	view := new(raftactor.ViewRef)
	view.Store(&raftactor.View{ID: selfID, ClusterID: clusterID, Lead: selfID, Term: 2})
	w.g = New(Config{
		Root: w.kit.Root(), Raft: raft, RaftView: view, Store: w.reader, Watch: hub, Leases: leases,
		IDs: raftactor.NewIDGen(selfID, time.Unix(0, 0)), MaxRequestBytes: 1536 * 1024, MaxTxnOps: fuzzMaxTxnOps,
		RequestTimeout: wait, BcryptCost: bcrypt.MinCost, Tokens: tokens, Members: func() []*pb.Member { return w.reader.Members().List },
	})
	self := &pb.Member{ID: selfID, Name: "self", PeerURLs: []string{"http://127.0.0.1:2380"}}
	w.apply(storeactor.Entry{Index: 1, Term: 1, ConfChange: &raftpb.ConfChange{
		Type: raftpb.ConfChangeAddNode.Enum(), NodeId: proto.Uint64(selfID), Context: storeactor.EncodeMemberContext(self)}})
	return w
}

// started waits until the watch Hub has handled its Started, where it
// takes the store's revision as its own: from then on it sees every
// revision the store commits, so a watch created before a write sees it.
func (w *world) started(hub *actor.PID) {
	w.t.Helper()
	s := watchactor.NewStream(watchactor.NewBudget(1<<20, 1<<20))
	w.kit.Root().Send(hub, &watchactor.OpenStream{Out: s})
	w.kit.Root().Send(hub, &watchactor.Create{Out: s, Req: &pb.WatchCreateRequest{Key: []byte("started")}})
	select {
	case <-s.Ready():
	case <-time.After(wait):
		w.t.Fatal("the watch hub did not start")
	}
	w.kit.Root().Send(hub, &watchactor.CloseStream{Out: s})
}

// apply hands entries to the store as committed and waits for the answer
// of the last one.
func (w *world) apply(entries ...storeactor.Entry) actors.Result {
	w.t.Helper()
	reply := make(chan actors.Result, 1)
	entries[len(entries)-1].Reply = reply
	w.kit.Root().Send(w.store, &storeactor.Apply{Entries: entries})
	select {
	case res := <-reply:
		return res
	case <-time.After(wait):
		w.t.Fatalf("the store did not answer %v", entries)
		return actors.Result{}
	}
}

// noFailures fails the input if an actor panicked: a request must never
// take down the actor that serves it.
func (w *world) noFailures() {
	w.t.Helper()
	w.events.ExpectNoSupervisorEvent(0)
}

// loopRaft stands in for the raft actor of a lone member: every proposal
// is committed at once, in its own entry, at term 2; reads are always
// linearizable (the handler's own proposals have been applied when it
// returns).
type loopRaft struct {
	store *actor.PID
	index uint64 // the last index handed out; 1 is the bootstrap entry
}

func (l *loopRaft) Receive(ctx actor.Context) {
	if l.index == 0 {
		l.index = 1
	}
	switch m := ctx.Message().(type) {
	case *raftactor.Propose:
		l.index++
		ctx.Request(l.store, &storeactor.Apply{Entries: []storeactor.Entry{{Index: l.index, Term: 2, Data: m.Data[8:], Reply: m.Reply}}})
	case *raftactor.ProposeConfChange:
		l.index++
		ctx.Request(l.store, &storeactor.Apply{Entries: []storeactor.Entry{{Index: l.index, Term: 2, ConfChange: m.CC, Reply: m.Reply}}})
	case *raftactor.ReadsWaiting:
		m.Batch.Finish(nil) // stays published: every later read is answered at once too
	case *raftactor.Status:
		actors.Reply(m.Reply, raftactor.StatusInfo{ID: selfID, Lead: selfID, Term: 2, Committed: l.index, Applied: l.index,
			Match: map[uint64]uint64{selfID: l.index}})
	}
}

// etcdError reports whether err is what etcd answers a client with: one of
// rpctypes' gRPC errors, with its code.
func etcdError(err error) bool {
	var ee rpctypes.EtcdError
	if errors.As(rpctypes.Error(err), &ee) {
		return status.Code(err) == ee.Code()
	}
	// rpctypes.Error does not know every error rpctypes declares.
	for _, e := range []error{rpctypes.ErrGRPCPermissionNotGiven, rpctypes.ErrGRPCCanceled, rpctypes.ErrGRPCDeadlineExceeded} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Inputs that are sequences of requests: each a length byte, then its
// encoding. A piece that does not decode is skipped.

func joinMessages[T proto.Message](tb testing.TB, ms ...T) []byte {
	tb.Helper()
	var data []byte
	for _, m := range ms {
		b, err := proto.Marshal(m)
		if err != nil || len(b) > 255 {
			tb.Fatalf("seed %v: %d bytes, %v", m, len(b), err)
		}
		data = append(append(data, byte(len(b))), b...)
	}
	return data
}

func splitMessages[T proto.Message](data []byte, newT func() T) []T {
	var out []T
	for len(data) > 0 {
		n := min(int(data[0]), len(data)-1)
		m := newT()
		if proto.Unmarshal(data[1:1+n], m) == nil {
			out = append(out, m)
		}
		data = data[1+n:]
	}
	return out
}

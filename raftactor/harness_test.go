package raftactor_test

import (
	"context"
	"fmt"
	"github.com/metastore/metastore/raftwal"
	"go.etcd.io/raft/v3"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
)

// wait bounds every wait for something that must happen; passing tests
// never reach it.
const wait = 10 * time.Second

const memberID = 0x8e9e05c52164694d

var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// openDB opens the node's pebble DB in memory, closed when the test ends.
// Call it before testkit.New so that actors stop before the DB closes.
func openDB(tb testing.TB) *pebble.DB {
	tb.Helper()
	db, err := storeactor.OpenPebble("/db", true)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// openWAL opens a raft WAL on fs, closed when the test ends. Call it
// before testkit.New, as openDB.
func openWAL(tb testing.TB, fs vfs.FS) *raftwal.WAL {
	tb.Helper()
	return openWALSized(tb, fs, 0)
}

// openWALSized is openWAL with segments of size bytes.
func openWALSized(tb testing.TB, fs vfs.FS, size int64) *raftwal.WAL {
	tb.Helper()
	wal, err := raftwal.Open(raftwal.Options{FS: fs, Dir: "/wal", SegmentSize: size})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { wal.Close() })
	return wal
}

// node is one member wired like node/node.go: a store and a raft actor
// on one pebble DB, under a Guardian or spawned directly by the test.
type node struct {
	t     *testing.T
	kit   *testkit.Kit
	db    *pebble.DB
	clock *testkit.FakeClock
	ids   *raftactor.IDGen
	cfg   raftactor.Config

	guardian *actor.PID
	fatal    chan error

	storeProps *actor.Props
	storePID   *actor.PID
	reader     *storeactor.Reader
	raftPID    *actor.PID
	raftView   *raftactor.ViewRef
	raftWrap   func(*actor.Props) *actor.Props
}

type nodeOpts struct {
	guardian    bool
	storeWrap   func(*actor.Props) *actor.Props // e.g. PanicOn
	raftWrap    func(*actor.Props) *actor.Props // e.g. a tap
	beforeStart func(*testkit.Kit)              // runs once the kit exists, before any actor
	raftConfig  func(*raftactor.Config)
	db          *pebble.DB
	wal         *raftwal.WAL // nil: one on a new in-memory FS
}

func startNode(t *testing.T, o nodeOpts) *node {
	t.Helper()
	n := &node{t: t, db: o.db, clock: testkit.NewFakeClock(epoch), fatal: make(chan error, 16), raftWrap: o.raftWrap}
	if n.db == nil {
		n.db = openDB(t)
	}
	wal := o.wal
	if wal == nil {
		wal = openWAL(t, vfs.NewMem())
	}
	n.kit = testkit.New(t)
	if o.beforeStart != nil {
		o.beforeStart(n.kit)
	}
	n.ids = raftactor.NewIDGen(memberID, n.clock.Now())
	if o.guardian {
		g := &actors.Guardian{Logger: zap.NewNop(), OnFatal: func(err error) {
			select {
			case n.fatal <- err:
			default:
			}
		}}
		n.guardian = n.kit.Spawn(actors.GuardianProps(g))
		// Runs before the kit's own cleanup: stop children the way
		// node.Stop does, so the guardian does not report them as fatal.
		t.Cleanup(func() {
			_, _ = actors.Ask(context.Background(), n.kit.Root(), n.guardian, func(r chan<- struct{}) any {
				return &actors.StopChildren{Reply: r}
			})
		})
	}
	n.startStore(o.storeWrap)
	n.cfg = raftactor.Config{
		DB: n.db, WAL: wal, ID: memberID, ClusterID: 0x1234, Peers: []raft.Peer{{ID: memberID}},
		Clock: n.clock, TickInterval: 100 * time.Millisecond, ElectionTicks: 10,
	}
	if o.raftConfig != nil {
		o.raftConfig(&n.cfg)
	}
	n.startRaft()
	return n
}

func (n *node) spawn(name string, props *actor.Props) *actor.PID {
	n.t.Helper()
	if n.guardian == nil {
		return n.kit.SpawnPrefix(props, name)
	}
	res, err := actors.Ask(context.Background(), n.kit.Root(), n.guardian, func(r chan<- actors.SpawnResult) any {
		return &actors.SpawnChild{Name: name, Props: props, Reply: r}
	})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		n.t.Fatalf("spawn %s: %v", name, err)
	}
	return res.PID
}

// startStore (re)creates the store from what pebble holds.
func (n *node) startStore(wrap func(*actor.Props) *actor.Props) {
	n.t.Helper()
	reader, err := storeactor.NewReader(n.db)
	if err != nil {
		n.t.Fatal(err)
	}
	props := storeactor.New(storeactor.Config{DB: n.db}, reader)
	if wrap != nil {
		props = wrap(props)
	}
	n.storeProps, n.reader = props, reader
	n.storePID = n.spawn("store", props)
}

// startRaft (re)creates the raft actor from what pebble holds and waits
// until it leads (a single voter campaigns at once).
func (n *node) startRaft() {
	n.t.Helper()
	n.cfg.Store, n.cfg.StoreView = n.storePID, n.reader.View
	props, view := raftactor.New(n.cfg)
	if n.raftWrap != nil {
		props = n.raftWrap(props)
	}
	n.raftView = view
	n.raftPID = n.spawn("raft", props)
	n.waitLeader()
}

func (n *node) waitLeader() {
	n.t.Helper()
	deadline := time.Now().Add(wait)
	for n.raftView.Load().Lead != memberID {
		if time.Now().After(deadline) {
			n.t.Fatalf("no leader: %+v", *n.raftView.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// restart stops the store and the raft actor (not under a guardian) and
// starts both again on the same DB, as a process restart would.
func (n *node) restart() {
	n.t.Helper()
	n.kit.Stop(n.raftPID)
	n.kit.Stop(n.storePID)
	n.startStore(nil)
	n.startRaft()
}

// send proposes req and returns the channel its result arrives on.
func (n *node) send(req *pb.InternalRaftRequest) <-chan actors.Result {
	id := n.ids.Next()
	data, err := raftactor.EncodeProposal(id, req)
	if err != nil {
		panic(err)
	}
	ch := make(chan actors.Result, 1)
	n.kit.Root().Send(n.raftPID, &raftactor.Propose{ID: id, Data: data, Req: req, Reply: ch})
	return ch
}

// await waits for a proposal's result; it may run off the test goroutine.
func await(ch <-chan actors.Result, d time.Duration) (actors.Result, error) {
	select {
	case r := <-ch:
		return r, nil
	case <-time.After(d):
		return actors.Result{}, fmt.Errorf("no reply within %v", d)
	}
}

// put proposes key=value and returns the revision it was written at.
func (n *node) put(key, value string) int64 {
	n.t.Helper()
	res, err := await(n.send(putReq(key, value)), wait)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		n.t.Fatalf("put %s: %v", key, err)
	}
	return res.Resp.(*pb.PutResponse).Header.Revision
}

func (n *node) status() raftactor.StatusInfo {
	n.t.Helper()
	st, err := actors.Ask(ctxTimeout(n.t), n.kit.Root(), n.raftPID, func(r chan<- raftactor.StatusInfo) any {
		return &raftactor.Status{Reply: r}
	})
	if err != nil {
		n.t.Fatalf("status: %v", err)
	}
	return st
}

func (n *node) readIndex() <-chan error {
	ch := make(chan error, 1)
	n.kit.Root().Send(n.raftPID, &raftactor.ReadIndex{Reply: ch})
	return ch
}

// joinRead makes a client's linearizable read as the gateway does: it
// joins the published batch, and the batch's first read tells the actor.
func (n *node) joinRead() <-chan error {
	b, first := n.raftView.JoinRead()
	if first {
		n.kit.Root().Send(n.raftPID, &raftactor.ReadsWaiting{Batch: b})
	}
	ch := make(chan error, 1)
	go func() {
		<-b.Done()
		ch <- b.Err()
	}()
	return ch
}

func (n *node) get(key string) (string, int64, bool) {
	n.t.Helper()
	r, err := n.reader.Range(&pb.RangeRequest{Key: []byte(key)})
	if err != nil {
		n.t.Fatalf("get %s: %v", key, err)
	}
	if len(r.Kvs) == 0 {
		return "", 0, false
	}
	return string(r.Kvs[0].Value), r.Kvs[0].ModRevision, true
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

func putReq(k, v string) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}
}

// raftLogBounds reports the first and last raft entry index the WAL
// holds, and how many.
func raftLogBounds(wal *raftwal.WAL) (first, last uint64, count int) {
	first, last = wal.Bounds()
	if first > last {
		return first, last, 0
	}
	return first, last, int(last - first + 1)
}

func hasKey(t *testing.T, db *pebble.DB, key string) bool {
	t.Helper()
	_, closer, err := db.Get([]byte(key))
	if err == pebble.ErrNotFound {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	closer.Close()
	return true
}

// syncFS is an in-memory FS that counts syncs of the raft WAL's segments and can
// hold the next one until released, to make group commit observable
// without touching product code.
type syncFS struct {
	vfs.FS
	syncs atomic.Int64

	mu      sync.Mutex
	gate    chan struct{}
	blocked chan struct{}
}

// holdNextSync makes the next WAL sync block until release is called;
// the returned channel is closed once a sync is blocked.
func (fs *syncFS) holdNextSync() (blocked <-chan struct{}, release func()) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.gate, fs.blocked = make(chan struct{}), make(chan struct{})
	g := fs.gate
	var once sync.Once
	return fs.blocked, func() { once.Do(func() { close(g) }) }
}

func (fs *syncFS) beforeSync() {
	fs.mu.Lock()
	g, b := fs.gate, fs.blocked
	fs.gate, fs.blocked = nil, nil
	fs.mu.Unlock()
	if g != nil {
		close(b)
		<-g
	}
	fs.syncs.Add(1)
}

func (fs *syncFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".wal") {
		return f, err
	}
	return &syncFile{File: f, fs: fs}, nil
}

func (fs *syncFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

func (fs *syncFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(newname, f, err)
}

func (fs *syncFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	return fs.wrap(name, f, err)
}

func (fs *syncFS) Unwrap() vfs.FS { return fs.FS }

type syncFile struct {
	vfs.File
	fs *syncFS
}

func (f *syncFile) Sync() error {
	f.fs.beforeSync()
	return f.File.Sync()
}

func (f *syncFile) SyncData() error {
	f.fs.beforeSync()
	return f.File.SyncData()
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)              {}
func (quietLogger) Errorf(string, ...any)             {}
func (quietLogger) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// openSyncCountingDB opens pebble with the options storeactor.OpenPebble
// uses, on a syncFS.
func openSyncCountingDB(t *testing.T) (*pebble.DB, *syncFS) {
	t.Helper()
	fs := &syncFS{FS: vfs.NewMem()}
	opts := storeactor.PebbleOptions()
	opts.FS = fs
	opts.Logger = quietLogger{}
	db, err := pebble.Open("/db", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, fs
}

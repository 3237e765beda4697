package storeactor_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
)

// wait bounds every wait for something that must happen; passing tests
// never reach it.
const wait = 5 * time.Second

// openDB opens an in-memory pebble DB closed when the test ends. Call it
// before testkit.New, so cleanups stop the actors before the DB closes.
func openDB(tb testing.TB) *pebble.DB {
	tb.Helper()
	db, err := storeactor.OpenPebble("/db", true)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// harness drives a real Store actor on a real (in-memory) pebble DB the
// way the raft actor does: a probe stands in for the raft actor, sends
// Apply with ctx.Request semantics (so the store answers Applied/Replay to
// it) and hands out consecutive raft indexes.
type harness struct {
	t      *testing.T
	kit    *testkit.Kit
	db     *pebble.DB
	cfg    storeactor.Config
	raft   *testkit.Probe
	pid    *actor.PID
	reader *storeactor.Reader
	index  uint64
	props  *actor.Props
}

func newHarness(t *testing.T, opts ...func(*storeactor.Config)) *harness {
	t.Helper()
	h := &harness{t: t, db: openDB(t)}
	h.cfg = storeactor.Config{DB: h.db}
	for _, o := range opts {
		o(&h.cfg)
	}
	// After the options: cleanups run last-registered first, so the kit
	// stops the store actor before a DB an option opened is closed (a
	// store still restarting after a panic would otherwise read a closed
	// DB, and pebble panics on the references it still holds).
	h.kit = testkit.New(t)
	h.raft = h.kit.NewProbe()
	h.start()
	return h
}

// start builds the store (reloading its state from pebble) and spawns it.
func (h *harness) start() {
	h.t.Helper()
	reader, err := storeactor.NewReader(h.cfg.DB)
	if err != nil {
		h.t.Fatal(err)
	}
	props := storeactor.New(h.cfg, reader)
	h.props, h.reader = props, reader
	h.pid = h.kit.Spawn(props)
	h.index = reader.View().Applied
}

func (h *harness) stop() {
	h.t.Helper()
	h.kit.Stop(h.pid)
}

func (h *harness) restart() {
	h.t.Helper()
	h.stop()
	h.start()
}

// applyRaw sends one Apply as the raft actor would and returns at once.
func (h *harness) applyRaw(entries ...storeactor.Entry) {
	h.raft.Request(h.pid, &storeactor.Apply{Entries: entries})
}

// apply sends one Apply whose entries carry reqs (one per entry, at the
// next indexes), waits for every reply and for the store's Applied.
func (h *harness) apply(reqs ...*pb.InternalRaftRequest) []actors.Result {
	h.t.Helper()
	chans := make([]chan actors.Result, len(reqs))
	entries := make([]storeactor.Entry, len(reqs))
	for i, r := range reqs {
		h.index++
		chans[i] = make(chan actors.Result, 1)
		entries[i] = storeactor.Entry{Index: h.index, Term: 1, Req: r, Reply: chans[i]}
	}
	h.applyRaw(entries...)
	out := make([]actors.Result, len(reqs))
	for i, ch := range chans {
		select {
		case out[i] = <-ch:
		case <-time.After(wait):
			h.t.Fatalf("no reply for entry %d (%v)", entries[i].Index, reqs[i])
		}
	}
	if got := testkit.Expect[*storeactor.Applied](h.raft, wait); got.Index != h.index {
		h.t.Fatalf("Applied{%d}, want %d", got.Index, h.index)
	}
	return out
}

// do applies one request and returns its result.
func (h *harness) do(r *pb.InternalRaftRequest) actors.Result {
	h.t.Helper()
	return h.apply(r)[0]
}

// must applies one request that must succeed.
func (h *harness) must(r *pb.InternalRaftRequest) actors.Result {
	h.t.Helper()
	res := h.do(r)
	if res.Err != nil {
		h.t.Fatalf("%v: %v", r, res.Err)
	}
	return res
}

func (h *harness) put(k, v string) *pb.PutResponse {
	h.t.Helper()
	return h.must(putReq(k, v)).Resp.(*pb.PutResponse)
}

func (h *harness) rng(r *pb.RangeRequest) *pb.RangeResponse {
	h.t.Helper()
	resp, err := h.reader.Range(r)
	if err != nil {
		h.t.Fatalf("range %v: %v", r, err)
	}
	return resp
}

// get reads key at rev (0: current) through the Reader.
func (h *harness) get(k string, rev int64) []string {
	h.t.Helper()
	return kvs(h.rng(&pb.RangeRequest{Key: []byte(k), Revision: rev}).Kvs)
}

// expectApplied takes the next message the store sent the raft actor,
// which must be Applied, and returns its index.
func expectApplied(t *testing.T, h *harness) uint64 {
	t.Helper()
	return testkit.Expect[*storeactor.Applied](h.raft, wait).Index
}

// expectMsg takes the next message the store sent the raft actor as a T.
func expectMsg[T any](t *testing.T, h *harness) T {
	t.Helper()
	return testkit.Expect[T](h.raft, wait)
}

func (h *harness) rev() int64 { return h.reader.View().Rev }

// Request builders.

func putReq(k, v string) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}
}

func putOpt(p *pb.PutRequest) *pb.InternalRaftRequest { return &pb.InternalRaftRequest{Put: p} }

func delReq(k, end string) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte(k), RangeEnd: bytesOrNil(end)}}
}

func txnReq(t *pb.TxnRequest) *pb.InternalRaftRequest { return &pb.InternalRaftRequest{Txn: t} }

func compactReq(rev int64, physical bool) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: rev, Physical: physical}}
}

func bytesOrNil(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// Txn op builders.

func opPut(k, v string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}}
}

func opPutReq(p *pb.PutRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: p}}
}

func opGet(k, end string, rev int64) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(k), RangeEnd: bytesOrNil(end), Revision: rev}}}
}

func opDel(k, end string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(k), RangeEnd: bytesOrNil(end), PrevKv: true}}}
}

func opTxn(t *pb.TxnRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: t}}
}

// kv renders a KeyValue compactly: key=value c<create> m<mod> v<version>,
// with a lease suffix when set.
func kv(k *mvccpb.KeyValue) string {
	s := fmt.Sprintf("%q=%q c%d m%d v%d", k.Key, k.Value, k.CreateRevision, k.ModRevision, k.Version)
	if k.Lease != 0 {
		s += fmt.Sprintf(" l%d", k.Lease)
	}
	return s
}

func kvs(in []*mvccpb.KeyValue) []string {
	out := make([]string, len(in))
	for i, k := range in {
		out[i] = kv(k)
	}
	return out
}

// kvAt is the expected rendering of kv.
func kvAt(k, v string, create, mod, version int64) string {
	return fmt.Sprintf("%q=%q c%d m%d v%d", k, v, create, mod, version)
}

func keys(in []*mvccpb.KeyValue) string {
	out := make([]string, len(in))
	for i, k := range in {
		out[i] = string(k.Key)
	}
	return strings.Join(out, ",")
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func wantErr(t *testing.T, what string, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Fatalf("%s: err = %v, want %v", what, got, want)
	}
}

// eventually polls cond until it holds or wait passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

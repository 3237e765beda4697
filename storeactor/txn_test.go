package storeactor_test

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/storeactor"
)

func cmpValue(k string, r pb.Compare_CompareResult, v string) *pb.Compare {
	return &pb.Compare{Key: []byte(k), Target: pb.Compare_VALUE, Result: r, TargetUnion: &pb.Compare_Value{Value: []byte(v)}}
}

func cmpCreate(k string, r pb.Compare_CompareResult, rev int64) *pb.Compare {
	return &pb.Compare{Key: []byte(k), Target: pb.Compare_CREATE, Result: r, TargetUnion: &pb.Compare_CreateRevision{CreateRevision: rev}}
}

func cmpMod(k string, r pb.Compare_CompareResult, rev int64) *pb.Compare {
	return &pb.Compare{Key: []byte(k), Target: pb.Compare_MOD, Result: r, TargetUnion: &pb.Compare_ModRevision{ModRevision: rev}}
}

func cmpVersion(k string, r pb.Compare_CompareResult, v int64) *pb.Compare {
	return &pb.Compare{Key: []byte(k), Target: pb.Compare_VERSION, Result: r, TargetUnion: &pb.Compare_Version{Version: v}}
}

func cmpLease(k string, r pb.Compare_CompareResult, l int64) *pb.Compare {
	return &pb.Compare{Key: []byte(k), Target: pb.Compare_LEASE, Result: r, TargetUnion: &pb.Compare_Lease{Lease: l}}
}

func withEnd(c *pb.Compare, end string) *pb.Compare {
	c.RangeEnd = []byte(end)
	return c
}

const (
	eq  = pb.Compare_EQUAL
	neq = pb.Compare_NOT_EQUAL
	gt  = pb.Compare_GREATER
	lt  = pb.Compare_LESS
)

// TestTxnCompare checks which branch a txn takes, through the Store (a
// write txn) and the Reader (read-only), on this state:
//
//	a=10 c2 m4 v2 · b=20 c3 m3 v1 · (c deleted at 6) · d="" c5 m5 v1
func TestTxnCompare(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1")  // 2
	h.put("b", "20") // 3
	h.put("a", "10") // 4
	h.put("d", "")   // 5
	h.put("c", "x")  // 6
	h.must(delReq("c", ""))
	if h.rev() != 7 {
		t.Fatalf("fixture revision %d", h.rev())
	}
	cases := []struct {
		name string
		cmp  []*pb.Compare
		want bool
	}{
		{"no compares succeed", nil, true},
		{"value equal", []*pb.Compare{cmpValue("a", eq, "10")}, true},
		{"value equal, mismatch", []*pb.Compare{cmpValue("a", eq, "1")}, false},
		{"value not equal", []*pb.Compare{cmpValue("a", neq, "1")}, true},
		{"value greater (bytewise)", []*pb.Compare{cmpValue("a", gt, "1")}, true},
		{"value less (bytewise)", []*pb.Compare{cmpValue("a", lt, "2")}, true},
		{"value of an absent key never holds: equal", []*pb.Compare{cmpValue("zz", eq, "")}, false},
		{"value of an absent key never holds: not equal", []*pb.Compare{cmpValue("zz", neq, "x")}, false},
		{"value of a deleted key never holds", []*pb.Compare{cmpValue("c", neq, "x")}, false},
		{"empty value equals empty", []*pb.Compare{cmpValue("d", eq, "")}, true},
		{"create revision", []*pb.Compare{cmpCreate("a", eq, 2)}, true},
		{"create revision 0 of an absent key (create-if-absent idiom)", []*pb.Compare{cmpCreate("zz", eq, 0)}, true},
		{"create revision 0 of a deleted key", []*pb.Compare{cmpCreate("c", eq, 0)}, true},
		{"create revision 0 of a present key", []*pb.Compare{cmpCreate("a", eq, 0)}, false},
		{"mod revision equal", []*pb.Compare{cmpMod("a", eq, 4)}, true},
		{"mod revision less", []*pb.Compare{cmpMod("a", lt, 4)}, false},
		{"mod revision greater", []*pb.Compare{cmpMod("a", gt, 3)}, true},
		{"mod revision of an absent key is 0", []*pb.Compare{cmpMod("zz", eq, 0)}, true},
		{"version", []*pb.Compare{cmpVersion("a", eq, 2)}, true},
		{"version of an absent key is 0", []*pb.Compare{cmpVersion("zz", lt, 1)}, true},
		{"version greater, mismatch", []*pb.Compare{cmpVersion("b", gt, 1)}, false},
		{"lease of a key without lease", []*pb.Compare{cmpLease("a", eq, 0)}, true},
		{"lease not equal", []*pb.Compare{cmpLease("a", neq, 0)}, false},
		{"all compares must hold", []*pb.Compare{cmpValue("a", eq, "10"), cmpVersion("b", eq, 2)}, false},
		{"all compares hold", []*pb.Compare{cmpValue("a", eq, "10"), cmpVersion("b", eq, 1), cmpCreate("zz", eq, 0)}, true},
		{"range compare: every key in [a,e) holds", []*pb.Compare{withEnd(cmpCreate("a", gt, 1), "e")}, true},
		{"range compare: one key in [a,e) fails", []*pb.Compare{withEnd(cmpMod("a", lt, 5), "e")}, false},
		{"range compare: values in [a,c)", []*pb.Compare{withEnd(cmpValue("a", gt, "0"), "c")}, true},
		{"range compare over no keys: value fails", []*pb.Compare{withEnd(cmpValue("p", neq, "x"), "q")}, false},
		{"range compare over no keys: create 0 holds", []*pb.Compare{withEnd(cmpCreate("p", eq, 0), "q")}, true},
		{"from-key range compare", []*pb.Compare{withEnd(cmpVersion("b", eq, 1), "\x00")}, true},
		{"range compare with end before key covers nothing", []*pb.Compare{withEnd(cmpVersion("d", eq, 0), "a")}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := &pb.TxnRequest{Compare: c.cmp,
				Success: []*pb.RequestOp{opGet("a", "", 0)},
				Failure: []*pb.RequestOp{opGet("b", "", 0), opGet("d", "", 0)}}
			check := func(via string, resp *pb.TxnResponse, err error) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %v", via, err)
				}
				if resp.Succeeded != c.want {
					t.Fatalf("%s: succeeded = %v, want %v", via, resp.Succeeded, c.want)
				}
				if n := len(resp.Responses); (c.want && n != 1) || (!c.want && n != 2) {
					t.Fatalf("%s: %d responses for the %v branch", via, n, c.want)
				}
				if resp.Header.Revision != 7 {
					t.Fatalf("%s: header revision %d, want 7", via, resp.Header.Revision)
				}
			}
			resp, err := h.reader.Txn(proto.Clone(req).(*pb.TxnRequest))
			check("Reader.Txn", resp, err)
			res := h.do(txnReq(proto.Clone(req).(*pb.TxnRequest)))
			resp, _ = res.Resp.(*pb.TxnResponse)
			check("Store apply", resp, res.Err)
		})
	}
	if h.rev() != 7 {
		t.Fatalf("read-only txns bumped the revision to %d", h.rev())
	}
}

// A write txn is one revision: every change gets the same main revision
// and consecutive sub revisions, reads inside it see its earlier writes,
// and the responses carry etcd's revisions.
func TestTxnOneRevisionReadYourWrites(t *testing.T) {
	h := newHarness(t)
	h.put("a", "old") // 2
	h.put("z", "z")   // 3

	res := h.must(txnReq(&pb.TxnRequest{
		Compare: []*pb.Compare{cmpValue("a", eq, "old")},
		Success: []*pb.RequestOp{
			opGet("a", "", 0),  // before any write: sees revision 3
			opPut("a", "new"),  // sub 0
			opGet("a", "", 0),  // sees its own write
			opPut("b", "1"),    // sub 1
			opPut("c", "2"),    // sub 2
			opGet("a", "d", 0), // all three at revision 4
			opDel("z", ""),     // sub 3
			opGet("z", "", 0),  // gone
			opDel("nope", ""),  // deletes nothing, no sub revision
			opGet("a", "", 3),  // a past revision inside the txn
			opGet("\x00", "\x00", 0),
		},
	}))
	tr := res.Resp.(*pb.TxnResponse)
	if !tr.Succeeded || tr.Header.Revision != 4 || h.rev() != 4 {
		t.Fatalf("txn succeeded=%v header rev %d store rev %d", tr.Succeeded, tr.Header.Revision, h.rev())
	}
	r := tr.Responses
	checkRange := func(i int, wantRev int64, want ...string) {
		t.Helper()
		rr := r[i].GetResponseRange()
		if got := kvs(rr.Kvs); !equal(got, want) || rr.Header.Revision != wantRev {
			t.Errorf("op %d: rev %d kvs %q, want rev %d %q", i, rr.Header.Revision, got, wantRev, want)
		}
	}
	checkRange(0, 3, kvAt("a", "old", 2, 2, 1))
	if p := r[1].GetResponsePut(); p.Header.Revision != 4 {
		t.Errorf("put a: header revision %d", p.Header.Revision)
	}
	checkRange(2, 4, kvAt("a", "new", 2, 4, 2))
	checkRange(5, 4, kvAt("a", "new", 2, 4, 2), kvAt("b", "1", 4, 4, 1), kvAt("c", "2", 4, 4, 1))
	if d := r[6].GetResponseDeleteRange(); d.Deleted != 1 || d.Header.Revision != 4 || len(d.PrevKvs) != 1 {
		t.Errorf("delete z = %v", d)
	}
	checkRange(7, 4)
	if d := r[8].GetResponseDeleteRange(); d.Deleted != 0 || d.Header.Revision != 4 {
		t.Errorf("delete nope = %v (etcd: the txn's revision once it has changes)", d)
	}
	checkRange(9, 4, kvAt("a", "old", 2, 2, 1))
	checkRange(10, 4, kvAt("a", "new", 2, 4, 2), kvAt("b", "1", 4, 4, 1), kvAt("c", "2", 4, 4, 1))

	hist := storeactor.History(h.db, 4, 4)
	want := []storeactor.HistoryEntry{{Main: 4, Sub: 0, Key: "a"}, {Main: 4, Sub: 1, Key: "b"}, {Main: 4, Sub: 2, Key: "c"}, {Main: 4, Sub: 3, Key: "z", Tombstone: true}}
	if len(hist) != len(want) {
		t.Fatalf("history at 4 = %+v, want %+v", hist, want)
	}
	for i := range want {
		if hist[i] != want[i] {
			t.Fatalf("history at 4 = %+v, want %+v", hist, want)
		}
	}
	if vs := storeactor.StoredVersions(h.db, "c"); len(vs) != 1 || vs[0].Sub != 2 || vs[0].Main != 4 {
		t.Fatalf("stored c = %+v", vs)
	}

	// The next write is the next revision.
	if pr := h.put("q", "1"); pr.Header.Revision != 5 {
		t.Fatalf("put after txn: revision %d", pr.Header.Revision)
	}
}

func TestTxnBranchesAndRevisions(t *testing.T) {
	h := newHarness(t)
	h.put("k", "v") // 2

	// A failed compare with no failure ops changes nothing.
	tr := h.must(txnReq(&pb.TxnRequest{Compare: []*pb.Compare{cmpValue("k", eq, "other")}, Success: []*pb.RequestOp{opPut("k", "x")}})).Resp.(*pb.TxnResponse)
	if tr.Succeeded || len(tr.Responses) != 0 || tr.Header.Revision != 2 || h.rev() != 2 {
		t.Fatalf("failed txn = %v, rev %d", tr, h.rev())
	}
	// The failure branch runs its ops.
	tr = h.must(txnReq(&pb.TxnRequest{Compare: []*pb.Compare{cmpValue("k", eq, "other")},
		Success: []*pb.RequestOp{opPut("s", "1")},
		Failure: []*pb.RequestOp{opPut("f", "1"), opGet("f", "", 0)}})).Resp.(*pb.TxnResponse)
	if tr.Succeeded || tr.Header.Revision != 3 || len(tr.Responses) != 2 {
		t.Fatalf("failure branch = %v", tr)
	}
	if got := kvs(tr.Responses[1].GetResponseRange().Kvs); !equal(got, []string{kvAt("f", "1", 3, 3, 1)}) {
		t.Fatalf("read in failure branch = %v", got)
	}
	if len(h.get("s", 0)) != 0 {
		t.Fatal("success branch ran too")
	}
	// A txn whose only write deletes nothing keeps the revision.
	tr = h.must(txnReq(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("nothing", "")}})).Resp.(*pb.TxnResponse)
	if tr.Header.Revision != 3 || h.rev() != 3 {
		t.Fatalf("no-op delete txn: header %d store %d", tr.Header.Revision, h.rev())
	}
	// Empty txn.
	tr = h.must(txnReq(&pb.TxnRequest{})).Resp.(*pb.TxnResponse)
	if !tr.Succeeded || tr.Header.Revision != 3 {
		t.Fatalf("empty txn = %v", tr)
	}
}

// Nested txns: every compare, nested ones included, sees the state before
// the outer txn (etcd evaluates the whole path first); nested headers stay
// empty; all writes share one revision.
func TestNestedTxn(t *testing.T) {
	h := newHarness(t)
	h.put("n", "old") // 2

	inner := &pb.TxnRequest{
		Compare: []*pb.Compare{cmpValue("n", eq, "old")}, // true: evaluated before the outer put
		Success: []*pb.RequestOp{opPut("inner", "yes"), opGet("n", "", 0)},
		Failure: []*pb.RequestOp{opPut("inner", "no")},
	}
	innerFail := &pb.TxnRequest{
		Compare: []*pb.Compare{cmpCreate("n", eq, 0)}, // false
		Success: []*pb.RequestOp{opPut("never", "1")},
		Failure: []*pb.RequestOp{opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("deep", "1")}})},
	}
	tr := h.must(txnReq(&pb.TxnRequest{
		Compare: []*pb.Compare{cmpVersion("n", eq, 1)},
		Success: []*pb.RequestOp{opPut("n", "new"), opTxn(inner), opTxn(innerFail), opPut("after", "1")},
	})).Resp.(*pb.TxnResponse)
	if !tr.Succeeded || tr.Header.Revision != 3 {
		t.Fatalf("outer = %v", tr)
	}
	in := tr.Responses[1].GetResponseTxn()
	if !in.Succeeded || in.Header == nil || in.Header.Revision != 0 {
		t.Fatalf("inner txn = %v (want succeeded, empty header)", in)
	}
	if p := in.Responses[0].GetResponsePut(); p.Header.Revision != 3 {
		t.Fatalf("inner put revision %d", p.Header.Revision)
	}
	if got := kvs(in.Responses[1].GetResponseRange().Kvs); !equal(got, []string{kvAt("n", "new", 2, 3, 2)}) {
		t.Fatalf("inner read = %v", got)
	}
	in2 := tr.Responses[2].GetResponseTxn()
	if in2.Succeeded || len(in2.Responses) != 1 || !in2.Responses[0].GetResponseTxn().Succeeded {
		t.Fatalf("second inner txn = %v", in2)
	}
	for k, want := range map[string][]string{
		"inner": {kvAt("inner", "yes", 3, 3, 1)},
		"deep":  {kvAt("deep", "1", 3, 3, 1)},
		"after": {kvAt("after", "1", 3, 3, 1)},
		"never": nil,
	} {
		if got := h.get(k, 0); !equal(got, want) {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	if n := len(storeactor.History(h.db, 3, 3)); n != 4 {
		t.Fatalf("%d changes at revision 3, want 4", n)
	}
}

// Requests on the chosen path are checked before anything is written: a
// failing check fails the whole txn with etcd's error and writes nothing.
func TestTxnChecksFailWholeTxn(t *testing.T) {
	cases := []struct {
		name string
		txn  *pb.TxnRequest
		want error
	}{
		{"unknown lease", &pb.TxnRequest{Success: []*pb.RequestOp{opPut("x", "1"), opPutReq(&pb.PutRequest{Key: []byte("y"), Lease: 7})}},
			rpctypes.ErrGRPCLeaseNotFound},
		{"ignore_value on an absent key", &pb.TxnRequest{Success: []*pb.RequestOp{opPut("x", "1"), opPutReq(&pb.PutRequest{Key: []byte("nokey"), IgnoreValue: true})}},
			rpctypes.ErrGRPCKeyNotFound},
		{"ignore_value on a key put earlier in the same txn (checked against the state before)",
			&pb.TxnRequest{Success: []*pb.RequestOp{opPut("fresh", "1"), opPutReq(&pb.PutRequest{Key: []byte("fresh"), IgnoreValue: true})}},
			rpctypes.ErrGRPCKeyNotFound},
		{"range at a future revision", &pb.TxnRequest{Success: []*pb.RequestOp{opPut("x", "1"), opGet("k", "", 100)}},
			rpctypes.ErrGRPCFutureRev},
		{"range at a compacted revision", &pb.TxnRequest{Success: []*pb.RequestOp{opPut("x", "1"), opGet("k", "", 2)}},
			rpctypes.ErrGRPCCompacted},
		{"bad op in a nested txn", &pb.TxnRequest{Success: []*pb.RequestOp{opPut("x", "1"),
			opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPutReq(&pb.PutRequest{Key: []byte("y"), Lease: 7})}})}},
			rpctypes.ErrGRPCLeaseNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			h.put("k", "1")              // 2
			h.put("k", "2")              // 3
			h.must(compactReq(3, false)) // reads below 3 are compacted
			res := h.do(txnReq(c.txn))
			wantErr(t, "txn", res.Err, c.want)
			if h.rev() != 3 {
				t.Fatalf("failed txn moved the revision to %d", h.rev())
			}
			if got := h.get("x", 0); len(got) != 0 {
				t.Fatalf("failed txn wrote x: %v", got)
			}
			// The same request as a read-only check on the Reader is
			// irrelevant (it writes); but a path not taken is never checked.
			ok := h.do(txnReq(&pb.TxnRequest{Compare: []*pb.Compare{cmpCreate("k", eq, 0)}, Success: c.txn.Success, Failure: []*pb.RequestOp{opPut("x", "ok")}}))
			if ok.Err != nil {
				t.Fatalf("ops on the branch not taken were checked: %v", ok.Err)
			}
			if got := h.get("x", 0); !equal(got, []string{kvAt("x", "ok", 4, 4, 1)}) {
				t.Fatalf("x = %v", got)
			}
		})
	}
	// Read-only txns on the Reader fail the same way.
	h := newHarness(t)
	h.put("k", "1")
	h.put("k", "2")
	h.must(compactReq(3, false))
	_, err := h.reader.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{opGet("k", "", 2)}})
	wantErr(t, "Reader.Txn at compacted revision", err, rpctypes.ErrGRPCCompacted)
	_, err = h.reader.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{opGet("k", "", 4)}})
	wantErr(t, "Reader.Txn at future revision", err, rpctypes.ErrGRPCFutureRev)
	if !storeactor.IsTxnReadOnly(&pb.TxnRequest{Success: []*pb.RequestOp{opGet("k", "", 0)}}) ||
		storeactor.IsTxnReadOnly(&pb.TxnRequest{Failure: []*pb.RequestOp{opDel("k", "")}}) ||
		storeactor.IsTxnReadOnly(&pb.TxnRequest{Success: []*pb.RequestOp{opTxn(&pb.TxnRequest{})}}) {
		t.Fatal("IsTxnReadOnly")
	}
}

// etcd's duplicate-key check lets a from-key delete and a later put of a
// key it removes share a txn. With ignore_value that put has no value to
// keep (etcd crashes on it); MetaStore fails the txn with "key not found"
// and changes nothing, and keeps serving.
func TestIgnoreValueAfterFromKeyDeleteInTxn(t *testing.T) {
	h := newHarness(t)
	h.put("a/3", "v")
	before := h.rev()
	res := h.do(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{
		{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}}},
		{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("a/3"), IgnoreValue: true}}},
	}}})
	wantErr(t, "txn", res.Err, rpctypes.ErrGRPCKeyNotFound)
	if h.rev() != before {
		t.Fatalf("revision moved from %d to %d", before, h.rev())
	}
	if got := h.get("a/3", 0); len(got) != 1 {
		t.Fatalf("a/3 = %v after a failed txn", got)
	}
	h.put("b", "still serving")
}

package storeactor_test

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/storeactor"
)

// TestPutDeleteRevisions walks one key through puts, deletes and re-puts
// and checks every revision etcd users see: header revisions, create/mod
// revisions, versions (reset after a delete), tombstones in past reads,
// and that deleting nothing does not bump the revision.
func TestPutDeleteRevisions(t *testing.T) {
	h := newHarness(t)

	if v := h.reader.View(); v.Rev != 1 || v.CompactRev != -1 || v.Applied != 0 {
		t.Fatalf("empty store view = %+v, want Rev 1, CompactRev -1, Applied 0", *v)
	}
	if r := h.rng(&pb.RangeRequest{Key: []byte("a")}); r.Header.Revision != 1 || len(r.Kvs) != 0 || r.Count != 0 {
		t.Fatalf("empty range = %v", r)
	}

	steps := []struct {
		name    string
		req     *pb.InternalRaftRequest
		wantRev int64    // response header revision
		wantA   []string // range "a" afterwards
	}{
		{"first put in empty store gets revision 2", putReq("a", "1"), 2, []string{kvAt("a", "1", 2, 2, 1)}},
		{"second put bumps mod and version, keeps create", putReq("a", "2"), 3, []string{kvAt("a", "2", 2, 3, 2)}},
		{"put of another key", putReq("b", "x"), 4, []string{kvAt("a", "2", 2, 3, 2)}},
		{"delete", delReq("a", ""), 5, nil},
		{"delete of a missing key does not bump the revision", delReq("a", ""), 5, nil},
		{"delete of a missing range does not bump the revision", delReq("x", "z"), 5, nil},
		{"re-put after delete: version restarts at 1, new create revision", putReq("a", "3"), 6, []string{kvAt("a", "3", 6, 6, 1)}},
		{"empty value is a value", putReq("a", ""), 7, []string{kvAt("a", "", 6, 7, 2)}},
	}
	for _, s := range steps {
		res := h.must(s.req)
		var got int64
		switch r := res.Resp.(type) {
		case *pb.PutResponse:
			got = r.Header.Revision
		case *pb.DeleteRangeResponse:
			got = r.Header.Revision
		}
		if got != s.wantRev {
			t.Errorf("%s: header revision %d, want %d", s.name, got, s.wantRev)
		}
		if v := h.rev(); v != s.wantRev {
			t.Errorf("%s: store revision %d, want %d", s.name, v, s.wantRev)
		}
		if a := h.get("a", 0); !equal(a, s.wantA) {
			t.Errorf("%s: range a = %v, want %v", s.name, a, s.wantA)
		}
	}

	// Past revisions see the tombstone as "no key" and older versions as they were.
	past := []struct {
		rev  int64
		want []string
	}{
		{1, nil},
		{2, []string{kvAt("a", "1", 2, 2, 1)}},
		{3, []string{kvAt("a", "2", 2, 3, 2)}},
		{4, []string{kvAt("a", "2", 2, 3, 2)}},
		{5, nil}, // deleted at 5
		{6, []string{kvAt("a", "3", 6, 6, 1)}},
		{7, []string{kvAt("a", "", 6, 7, 2)}},
	}
	for _, p := range past {
		r := h.rng(&pb.RangeRequest{Key: []byte("a"), Revision: p.rev})
		if got := kvs(r.Kvs); !equal(got, p.want) {
			t.Errorf("range a at %d = %v, want %v", p.rev, got, p.want)
		}
		if r.Header.Revision != 7 {
			t.Errorf("range at %d: header revision %d, want the current revision 7", p.rev, r.Header.Revision)
		}
	}
	_, err := h.reader.Range(&pb.RangeRequest{Key: []byte("a"), Revision: 8})
	wantErr(t, "range at a future revision", err, rpctypes.ErrGRPCFutureRev)

	// A tombstone is stored as a version of its own (physically, until compaction).
	vs := storeactor.StoredVersions(h.db, "a")
	if len(vs) != 5 || !vs[2].Tombstone || vs[2].Main != 5 {
		t.Fatalf("stored versions of a = %+v", vs)
	}
}

func TestDeleteRange(t *testing.T) {
	h := newHarness(t)
	for _, k := range []string{"a", "b", "b1", "b2", "c"} {
		h.put(k, "v"+k) // revisions 2..6
	}
	res := h.must(&pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("b"), RangeEnd: []byte("c"), PrevKv: true}})
	dr := res.Resp.(*pb.DeleteRangeResponse)
	if dr.Deleted != 3 || dr.Header.Revision != 7 {
		t.Fatalf("delete [b,c) = deleted %d rev %d, want 3 at 7", dr.Deleted, dr.Header.Revision)
	}
	want := []string{kvAt("b", "vb", 3, 3, 1), kvAt("b1", "vb1", 4, 4, 1), kvAt("b2", "vb2", 5, 5, 1)}
	if got := kvs(dr.PrevKvs); !equal(got, want) {
		t.Fatalf("prev kvs = %v, want %v", got, want)
	}
	// All keys deleted by one request share its revision, one sub revision each.
	hist := storeactor.History(h.db, 7, 7)
	if len(hist) != 3 || hist[0].Sub != 0 || hist[2].Sub != 2 || !hist[1].Tombstone || hist[1].Key != "b1" {
		t.Fatalf("history at 7 = %+v", hist)
	}
	// Without prev_kv, no prev kvs.
	dr = h.must(delReq("a", "")).Resp.(*pb.DeleteRangeResponse)
	if dr.Deleted != 1 || dr.PrevKvs != nil || dr.Header.Revision != 8 {
		t.Fatalf("delete a = %v", dr)
	}
	// From-key delete ("\x00" range end) takes everything from the key on.
	dr = h.must(delReq("\x00", "\x00")).Resp.(*pb.DeleteRangeResponse)
	if dr.Deleted != 1 || dr.Header.Revision != 9 {
		t.Fatalf("delete all = %v", dr)
	}
	if r := h.rng(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}); r.Count != 0 {
		t.Fatalf("after delete all: %v", r)
	}
	// range_end <= key deletes nothing and keeps the revision.
	h.put("m", "1") // 10
	dr = h.must(delReq("z", "m")).Resp.(*pb.DeleteRangeResponse)
	if dr.Deleted != 0 || dr.Header.Revision != 10 || h.rev() != 10 {
		t.Fatalf("delete [z,m) = %v, store rev %d", dr, h.rev())
	}
}

func TestPutOptions(t *testing.T) {
	cases := []struct {
		name     string
		setup    bool // "k" exists (put k=old at revision 2) before the put
		put      *pb.PutRequest
		wantErr  error
		wantPrev string // rendered prev_kv, "" for none
		wantK    []string
	}{
		{name: "prev_kv of an absent key is nil",
			put:   &pb.PutRequest{Key: []byte("k"), Value: []byte("new"), PrevKv: true},
			wantK: []string{kvAt("k", "new", 2, 2, 1)}},
		{name: "prev_kv returns the replaced version", setup: true,
			put:      &pb.PutRequest{Key: []byte("k"), Value: []byte("new"), PrevKv: true},
			wantPrev: kvAt("k", "old", 2, 2, 1),
			wantK:    []string{kvAt("k", "new", 2, 3, 2)}},
		{name: "no prev_kv unless asked", setup: true,
			put:   &pb.PutRequest{Key: []byte("k"), Value: []byte("new")},
			wantK: []string{kvAt("k", "new", 2, 3, 2)}},
		{name: "ignore_value keeps the value, bumps version", setup: true,
			put:   &pb.PutRequest{Key: []byte("k"), IgnoreValue: true},
			wantK: []string{kvAt("k", "old", 2, 3, 2)}},
		{name: "ignore_value with prev_kv", setup: true,
			put:      &pb.PutRequest{Key: []byte("k"), IgnoreValue: true, PrevKv: true},
			wantPrev: kvAt("k", "old", 2, 2, 1),
			wantK:    []string{kvAt("k", "old", 2, 3, 2)}},
		{name: "ignore_value on an absent key", put: &pb.PutRequest{Key: []byte("k"), IgnoreValue: true},
			wantErr: rpctypes.ErrGRPCKeyNotFound},
		{name: "ignore_lease on an absent key", put: &pb.PutRequest{Key: []byte("k"), Value: []byte("v"), IgnoreLease: true},
			wantErr: rpctypes.ErrGRPCKeyNotFound},
		{name: "ignore_lease on a present key keeps lease 0", setup: true,
			put:   &pb.PutRequest{Key: []byte("k"), Value: []byte("v"), IgnoreLease: true},
			wantK: []string{kvAt("k", "v", 2, 3, 2)}},
		{name: "unknown lease", put: &pb.PutRequest{Key: []byte("k"), Value: []byte("v"), Lease: 42},
			wantErr: rpctypes.ErrGRPCLeaseNotFound},
		{name: "unknown lease on a present key", setup: true, put: &pb.PutRequest{Key: []byte("k"), Value: []byte("v"), Lease: 42},
			wantErr: rpctypes.ErrGRPCLeaseNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			before := []string(nil)
			if c.setup {
				h.put("k", "old")
				before = h.get("k", 0)
			}
			rev := h.rev()
			res := h.do(putOpt(c.put))
			if c.wantErr != nil {
				wantErr(t, "put", res.Err, c.wantErr)
				if h.rev() != rev {
					t.Fatalf("a failed put bumped the revision %d -> %d", rev, h.rev())
				}
				if got := h.get("k", 0); !equal(got, before) {
					t.Fatalf("a failed put changed k: %v", got)
				}
				return
			}
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			pr := res.Resp.(*pb.PutResponse)
			if pr.Header.Revision != rev+1 {
				t.Fatalf("header revision %d, want %d", pr.Header.Revision, rev+1)
			}
			prev := ""
			if pr.PrevKv != nil {
				prev = kv(pr.PrevKv)
			}
			if prev != c.wantPrev {
				t.Fatalf("prev_kv = %q, want %q", prev, c.wantPrev)
			}
			if got := h.get("k", 0); !equal(got, c.wantK) {
				t.Fatalf("k = %v, want %v", got, c.wantK)
			}
		})
	}
}

// rangeFixture writes, at revisions 2..11:
//
//	a=3 b=1 c=5 a=2 d=4 b=9 b=6 e=0 a\x00b=z b\xff=y
//
// leaving (key=value create mod version):
//
//	a=2 c2 m5 v2 · a\x00b=z c10 m10 v1 · b=6 c3 m8 v3 · b\xff=y c11 m11 v1
//	c=5 c4 m4 v1 · d=4 c6 m6 v1 · e=0 c9 m9 v1
func rangeFixture(h *harness) {
	h.t.Helper()
	for _, kv := range [][2]string{{"a", "3"}, {"b", "1"}, {"c", "5"}, {"a", "2"}, {"d", "4"}, {"b", "9"}, {"b", "6"}, {"e", "0"}, {"a\x00b", "z"}, {"b\xff", "y"}} {
		h.put(kv[0], kv[1])
	}
	if h.rev() != 11 {
		h.t.Fatalf("fixture revision %d", h.rev())
	}
}

var (
	fa   = kvAt("a", "2", 2, 5, 2)
	fa0b = kvAt("a\x00b", "z", 10, 10, 1)
	fb   = kvAt("b", "6", 3, 8, 3)
	fbff = kvAt("b\xff", "y", 11, 11, 1)
	fc   = kvAt("c", "5", 4, 4, 1)
	fd   = kvAt("d", "4", 6, 6, 1)
	fe   = kvAt("e", "0", 9, 9, 1)
)

func TestRange(t *testing.T) {
	h := newHarness(t)
	rangeFixture(h)
	all := []string{fa, fa0b, fb, fbff, fc, fd, fe}

	type q = pb.RangeRequest
	cases := []struct {
		name      string
		req       *q
		want      []string
		wantCount int64
		wantMore  bool
		wantErr   error
		bug       string // known product bug: the case is skipped with this reason
	}{
		{name: "single key", req: &q{Key: []byte("a")}, want: []string{fa}, wantCount: 1},
		{name: "missing single key", req: &q{Key: []byte("aa")}, wantCount: 0},
		{name: "single key with a zero byte", req: &q{Key: []byte("a\x00b")}, want: []string{fa0b}, wantCount: 1},
		{name: "single key count only", req: &q{Key: []byte("b"), CountOnly: true}, wantCount: 1},
		{name: "single key keys only", req: &q{Key: []byte("b"), KeysOnly: true}, want: []string{kvAt("b", "", 3, 8, 3)}, wantCount: 1},
		{name: "single key before it existed", req: &q{Key: []byte("e"), Revision: 8}, wantCount: 0},
		{name: "prefix a", req: &q{Key: []byte("a"), RangeEnd: []byte("b")}, want: []string{fa, fa0b}, wantCount: 2},
		{name: "prefix b (0xff byte inside)", req: &q{Key: []byte("b"), RangeEnd: []byte("c")}, want: []string{fb, fbff}, wantCount: 2},
		{name: "prefix a\\x00 (zero byte in keys)", req: &q{Key: []byte("a\x00"), RangeEnd: []byte("a\x01")}, want: []string{fa0b}, wantCount: 1},
		{name: "from key", req: &q{Key: []byte("c"), RangeEnd: []byte{0}}, want: []string{fc, fd, fe}, wantCount: 3},
		{name: "all keys", req: &q{Key: []byte{0}, RangeEnd: []byte{0}}, want: all, wantCount: 7},
		{name: "end before key", req: &q{Key: []byte("c"), RangeEnd: []byte("a")}, wantCount: 0},
		{name: "end equal to key", req: &q{Key: []byte("c"), RangeEnd: []byte("c")}, wantCount: 0},
		{name: "end just after key", req: &q{Key: []byte("c"), RangeEnd: []byte("c\x00")}, want: []string{fc}, wantCount: 1},
		{name: "limit", req: &q{Key: []byte{0}, RangeEnd: []byte{0}, Limit: 2}, want: []string{fa, fa0b}, wantCount: 7, wantMore: true},
		{name: "limit equal to count", req: &q{Key: []byte{0}, RangeEnd: []byte{0}, Limit: 7}, want: all, wantCount: 7},
		{name: "limit above count", req: &q{Key: []byte{0}, RangeEnd: []byte{0}, Limit: 100}, want: all, wantCount: 7},
		{name: "limit on single key", req: &q{Key: []byte("a"), Limit: 1}, want: []string{fa}, wantCount: 1},
		{name: "count only", req: &q{Key: []byte("a"), RangeEnd: []byte("c"), CountOnly: true}, wantCount: 4},
		{name: "count only with limit", req: &q{Key: []byte{0}, RangeEnd: []byte{0}, CountOnly: true, Limit: 1}, wantCount: 7},
		{name: "keys only", req: &q{Key: []byte("d"), RangeEnd: []byte("f"), KeysOnly: true},
			want: []string{kvAt("d", "", 6, 6, 1), kvAt("e", "", 9, 9, 1)}, wantCount: 2},
		{name: "past revision 4", req: &q{Key: []byte{0}, RangeEnd: []byte{0}, Revision: 4},
			want: []string{kvAt("a", "3", 2, 2, 1), kvAt("b", "1", 3, 3, 1), fc}, wantCount: 3},
		{name: "past revision 7", req: &q{Key: []byte("b"), Revision: 7}, want: []string{kvAt("b", "9", 3, 7, 2)}, wantCount: 1},
		{name: "past revision with limit", req: &q{Key: []byte{0}, RangeEnd: []byte{0}, Revision: 6, Limit: 2},
			want: []string{kvAt("a", "2", 2, 5, 2), kvAt("b", "1", 3, 3, 1)}, wantCount: 4, wantMore: true},
		{name: "current revision given explicitly", req: &q{Key: []byte("a"), Revision: 11}, want: []string{fa}, wantCount: 1},
		{name: "future revision", req: &q{Key: []byte("a"), Revision: 12}, wantErr: rpctypes.ErrGRPCFutureRev},

		{name: "sort value ascend", req: &q{Key: []byte{0}, RangeEnd: []byte{0}, SortTarget: pb.RangeRequest_VALUE, SortOrder: pb.RangeRequest_ASCEND},
			want: []string{fe, fa, fd, fc, fb, fbff, fa0b}, wantCount: 7},
		{name: "sort value, order none means ascend", req: &q{Key: []byte{0}, RangeEnd: []byte{0}, SortTarget: pb.RangeRequest_VALUE},
			want: []string{fe, fa, fd, fc, fb, fbff, fa0b}, wantCount: 7},
		{name: "sort value, order none, with limit: etcd sorts only the first limit+1 keys", req: &q{Key: []byte{0}, RangeEnd: []byte{0}, SortTarget: pb.RangeRequest_VALUE, Limit: 2},
			want: []string{fa, fb}, wantCount: 7, wantMore: true},
		{name: "sort key descend with limit", req: &q{Key: []byte{0}, RangeEnd: []byte{0}, SortOrder: pb.RangeRequest_DESCEND, Limit: 2},
			want: []string{fe, fd}, wantCount: 7, wantMore: true},
		{name: "sort key ascend", req: &q{Key: []byte("b"), RangeEnd: []byte{0}, SortTarget: pb.RangeRequest_KEY, SortOrder: pb.RangeRequest_ASCEND, Limit: 3},
			want: []string{fb, fbff, fc}, wantCount: 5, wantMore: true},
		{name: "sort create descend", req: &q{Key: []byte{0}, RangeEnd: []byte{0}, SortTarget: pb.RangeRequest_CREATE, SortOrder: pb.RangeRequest_DESCEND},
			want: []string{fbff, fa0b, fe, fd, fc, fb, fa}, wantCount: 7},
		{name: "sort mod ascend", req: &q{Key: []byte{0}, RangeEnd: []byte{0}, SortTarget: pb.RangeRequest_MOD, SortOrder: pb.RangeRequest_ASCEND},
			want: []string{fc, fa, fd, fb, fe, fa0b, fbff}, wantCount: 7},
		{name: "sort mod descend with limit sorts before limiting", req: &q{Key: []byte{0}, RangeEnd: []byte{0}, SortTarget: pb.RangeRequest_MOD, SortOrder: pb.RangeRequest_DESCEND, Limit: 1},
			want: []string{fbff}, wantCount: 7, wantMore: true},
		{name: "sort version descend with limit", req: &q{Key: []byte{0}, RangeEnd: []byte{0}, SortTarget: pb.RangeRequest_VERSION, SortOrder: pb.RangeRequest_DESCEND, Limit: 2},
			want: []string{fb, fa}, wantCount: 7, wantMore: true},
		{name: "keys only sorted by value", req: &q{Key: []byte("c"), RangeEnd: []byte{0}, KeysOnly: true, SortTarget: pb.RangeRequest_VALUE},
			want: []string{kvAt("e", "", 9, 9, 1), kvAt("d", "", 6, 6, 1), kvAt("c", "", 4, 4, 1)}, wantCount: 3},

		{name: "min mod revision (count is before filtering)", req: &q{Key: []byte{0}, RangeEnd: []byte{0}, MinModRevision: 6},
			want: []string{fa0b, fb, fbff, fd, fe}, wantCount: 7},
		{name: "max mod revision", req: &q{Key: []byte{0}, RangeEnd: []byte{0}, MaxModRevision: 5},
			want: []string{fa, fc}, wantCount: 7},
		{name: "create revision window", req: &q{Key: []byte{0}, RangeEnd: []byte{0}, MinCreateRevision: 4, MaxCreateRevision: 9},
			want: []string{fc, fd, fe}, wantCount: 7},
		{name: "filter then limit", req: &q{Key: []byte{0}, RangeEnd: []byte{0}, MaxCreateRevision: 3, Limit: 1},
			want: []string{fa}, wantCount: 7, wantMore: true},
		{name: "filter with past revision", req: &q{Key: []byte{0}, RangeEnd: []byte{0}, Revision: 5, MinModRevision: 4},
			want: []string{kvAt("a", "2", 2, 5, 2), fc}, wantCount: 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.bug != "" {
				t.Skip("BUG: " + c.bug)
			}
			check := func(via string, resp *pb.RangeResponse, err error) {
				t.Helper()
				if c.wantErr != nil {
					wantErr(t, via, err, c.wantErr)
					return
				}
				if err != nil {
					t.Fatalf("%s: %v", via, err)
				}
				if got := kvs(resp.Kvs); !equal(got, c.want) {
					t.Errorf("%s: kvs\n got %q\nwant %q", via, got, c.want)
				}
				if resp.Count != c.wantCount || resp.More != c.wantMore {
					t.Errorf("%s: count %d more %v, want %d %v", via, resp.Count, resp.More, c.wantCount, c.wantMore)
				}
				if resp.Header.Revision != 11 {
					t.Errorf("%s: header revision %d, want 11", via, resp.Header.Revision)
				}
			}
			// The same answer through the concurrent Reader, a read-only
			// txn on the Reader, and a Range applied by the Store actor.
			resp, err := h.reader.Range(proto.Clone(c.req).(*q))
			check("Reader.Range", resp, err)

			txn := &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: proto.Clone(c.req).(*q)}}}}
			tr, err := h.reader.Txn(txn)
			if err == nil {
				resp = tr.Responses[0].GetResponseRange()
			}
			check("Reader.Txn", resp, err)

			res := h.do(&pb.InternalRaftRequest{Range: proto.Clone(c.req).(*q)})
			resp, _ = res.Resp.(*pb.RangeResponse)
			check("Store apply", resp, res.Err)
		})
	}
}

// Applying entries whose request is only in Data (as after a restart or
// on a follower) gives the same result as with Req set.
func TestApplyDecodesData(t *testing.T) {
	h := newHarness(t)
	data, err := proto.Marshal(putReq("k", "v"))
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan actors.Result, 1)
	h.applyRaw(storeactor.Entry{Index: 1, Term: 1, Data: data, Reply: ch},
		storeactor.Entry{Index: 2, Term: 1}) // an empty entry (leader's first) only advances Applied
	res := <-ch
	if res.Err != nil || res.Resp.(*pb.PutResponse).Header.Revision != 2 {
		t.Fatalf("res = %+v", res)
	}
	if a := expectApplied(t, h); a != 2 {
		t.Fatalf("Applied %d", a)
	}
	if got := h.get("k", 0); !equal(got, []string{kvAt("k", "v", 2, 2, 1)}) {
		t.Fatalf("k = %v", got)
	}
	if v := h.reader.View(); v.Applied != 2 || v.AppliedTerm != 1 {
		t.Fatalf("view %+v", *v)
	}
}

// bugPastRead: storeactor/read.go visitAt keeps p (a sub-slice of
// it.Key()) across it.SeekGE, which invalidates it. When a key has no
// version at or below the read revision and the next key's encoded prefix
// has the same length, p then reads as that next key, so the next key is
// reported with a version newer than the read revision.
const bugPastRead = "read at a past revision returns a key created after it (read.go visitAt: p aliases it.Key() across SeekGE)"

// A read at a past revision must not see keys created after it, whatever
// the lengths of the neighbouring keys. Kubernetes lists at a past
// resourceVersion all the time.
func TestRangeAtPastRevisionIgnoresLaterKeys(t *testing.T) {
	h := newHarness(t)
	h.put("x", "1") // 2
	h.put("a", "1") // 3
	h.put("b", "1") // 4
	h.put("c", "1") // 5
	for rev, want := range map[int64][]string{
		2: {kvAt("x", "1", 2, 2, 1)},
		3: {kvAt("a", "1", 3, 3, 1), kvAt("x", "1", 2, 2, 1)},
		4: {kvAt("a", "1", 3, 3, 1), kvAt("b", "1", 4, 4, 1), kvAt("x", "1", 2, 2, 1)},
	} {
		r := h.rng(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: rev})
		if got := kvs(r.Kvs); !equal(got, want) || r.Count != int64(len(want)) {
			t.Errorf("all keys at revision %d: count %d %q, want %q", rev, r.Count, got, want)
		}
	}
}

// Several entries in one Apply (a group-committed raft batch) see each
// other's writes: each gets its own revision, versions and tombstones
// chain correctly, and a compaction can name a revision written earlier
// in the same batch.
func TestOneApplyManyEntries(t *testing.T) {
	h := newHarness(t)
	res := h.apply(
		putReq("a", "1"), // 2
		putReq("a", "2"), // 3
		delReq("a", ""),  // 4
		delReq("a", ""),  // no-op
		putReq("a", "3"), // 5: version restarts
		txnReq(&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("a", eq, 1)}, Success: []*pb.RequestOp{opPut("a", "4"), opPut("b", "1")}}), // 6
		compactReq(5, false),
		putReq("b", "2"), // 7
	)
	wantRevs := []int64{2, 3, 4, 4, 5, 6, 6, 7}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("entry %d: %v", i, r.Err)
		}
		var rev int64
		switch m := r.Resp.(type) {
		case *pb.PutResponse:
			rev = m.Header.Revision
		case *pb.DeleteRangeResponse:
			rev = m.Header.Revision
		case *pb.TxnResponse:
			rev = m.Header.Revision
			if !m.Succeeded {
				t.Errorf("txn compare did not see the put before it in the batch")
			}
		case *pb.CompactionResponse:
			rev = m.Header.Revision
		}
		if rev != wantRevs[i] {
			t.Errorf("entry %d: revision %d, want %d", i, rev, wantRevs[i])
		}
	}
	if got := h.get("a", 0); !equal(got, []string{kvAt("a", "4", 5, 6, 2)}) {
		t.Errorf("a = %v", got)
	}
	if got := h.get("b", 0); !equal(got, []string{kvAt("b", "2", 6, 7, 2)}) {
		t.Errorf("b = %v", got)
	}
	if v := h.reader.View(); v.Rev != 7 || v.CompactRev != 5 || v.Applied != 8 {
		t.Errorf("view %+v", *v)
	}
}

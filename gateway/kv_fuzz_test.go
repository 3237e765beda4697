package gateway

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// The KV fuzz targets decode a request from the fuzz input, send it through
// the gRPC handler of a fresh world holding seedKV's history, and compare
// the answer with kvModel's (etcd's rules): a request etcd refuses must get
// etcd's error, any other must get etcd's response, and nothing may panic.

// seedLease is the lease seedKV grants (c/1 was put with it).
const seedLease = 7

// seedKV writes a small history through the handlers, the model following
// along: keys created, overwritten, deleted and created again, a key put
// with a lease, two keys in one revision, the highest byte as a key, an
// empty value, and a compaction at revision 3. It ends at revision 12.
func seedKV(w *world) *kvModel {
	w.t.Helper()
	m := newKVModel()
	if _, err := (&leaseServer{g: w.g}).LeaseGrant(w.ctx, &pb.LeaseGrantRequest{ID: seedLease, TTL: 3600}); err != nil {
		w.t.Fatal(err)
	}
	m.leases[seedLease] = true
	put := func(k, v string, lease int64) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(v), Lease: lease}}}
	}
	del := func(k, end string) *pb.RequestOp {
		d := &pb.DeleteRangeRequest{Key: []byte(k)}
		if end != "" {
			d.RangeEnd = []byte(end)
		}
		return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: d}}
	}
	for _, ops := range [][]*pb.RequestOp{
		{put("a", "1", 0)}, {put("b", "2", 0)}, {put("a", "3", 0)}, {put("c/1", "x", seedLease)}, {put("c/2", "y", 0)},
		{del("b", "")}, {put("d", "4", 0), put("e", "", 0)}, {put("b", "6", 0)}, {put("\xff", "max", 0)},
		{del("c/", "c0")}, {put("c/1", "z", 0)},
	} {
		txn := &pb.TxnRequest{Success: ops}
		if _, err := m.txnReq(txn); err != nil {
			w.t.Fatal(err)
		}
		if _, err := w.kv().Txn(w.ctx, txn); err != nil {
			w.t.Fatal(err)
		}
	}
	if _, err := w.kv().Compact(w.ctx, &pb.CompactionRequest{Revision: 3}); err != nil {
		w.t.Fatal(err)
	}
	m.compact = 3
	return m
}

func (w *world) kv() *kvServer { return &kvServer{g: w.g} }

// header is the header the gateway puts on a response at rev.
func header(rev int64) *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: clusterID, MemberId: selfID, RaftTerm: 2, Revision: rev}
}

// expect fails the input unless MetaStore answered as the model: the same
// etcd error, or the same response.
func expect[T proto.Message](t *testing.T, req proto.Message, got T, gotErr error, want T, wantErr error) {
	t.Helper()
	switch {
	case wantErr != nil:
		if gotErr == nil || status.Code(gotErr) != status.Code(wantErr) || rpctypes.ErrorDesc(gotErr) != rpctypes.ErrorDesc(wantErr) {
			t.Fatalf("request %s\ngot error %v, want %v", prototext.Format(req), gotErr, wantErr)
		}
	case gotErr != nil:
		t.Fatalf("request %s\ngot error %v, want\n%s", prototext.Format(req), gotErr, prototext.Format(want))
	case !proto.Equal(got, want):
		t.Fatalf("request %s\ngot\n%s\nwant\n%s", prototext.Format(req), prototext.Format(got), prototext.Format(want))
	}
}

// validRange, validPut, validDelete and validTxn are etcd's v3rpc checks
// (api/v3rpc/key.go), the requests it refuses before they reach raft.

func validRange(r *pb.RangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(r.SortOrder)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(r.SortTarget)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	return nil
}

func validPut(r *pb.PutRequest) error {
	switch {
	case len(r.Key) == 0:
		return rpctypes.ErrGRPCEmptyKey
	case r.IgnoreValue && len(r.Value) != 0:
		return rpctypes.ErrGRPCValueProvided
	case r.IgnoreLease && r.Lease != 0:
		return rpctypes.ErrGRPCLeaseProvided
	}
	return nil
}

func validDelete(r *pb.DeleteRangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	return nil
}

func FuzzRange(f *testing.F) {
	for _, r := range []*pb.RangeRequest{
		{Key: []byte("a")},
		{Key: []byte("a"), Revision: 2},
		{Key: []byte("a"), Revision: 4, KeysOnly: true},
		{Key: []byte("\x00"), RangeEnd: []byte("\x00"), SortTarget: pb.RangeRequest_VALUE, SortOrder: pb.RangeRequest_DESCEND, Limit: 3},
		{Key: []byte("c/"), RangeEnd: []byte("c0"), Revision: 6, MinModRevision: 6, KeysOnly: true},
		{Key: []byte("a"), RangeEnd: []byte("z"), SortTarget: pb.RangeRequest_MOD, Limit: 2, Serializable: true},
		{Key: []byte("b"), RangeEnd: []byte("\x00"), CountOnly: true, Revision: 99},
		{Key: []byte("a"), SortOrder: 7},
		{},
	} {
		f.Add(mustMarshal(f, r))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := new(pb.RangeRequest)
		if proto.Unmarshal(data, r) != nil {
			return
		}
		w := newWorld(t)
		m := seedKV(w)
		var want *pb.RangeResponse
		wantErr := validRange(r)
		if wantErr == nil {
			if want, wantErr = m.rangeReq(r); wantErr == nil {
				want.Header = header(m.rev())
			}
		}
		got, err := w.kv().Range(w.ctx, proto.Clone(r).(*pb.RangeRequest))
		expect(t, r, got, err, want, wantErr)
		w.noFailures()
	})
}

func FuzzPut(f *testing.F) {
	for _, r := range []*pb.PutRequest{
		{Key: []byte("a"), Value: []byte("v")},
		{Key: []byte("new"), Value: []byte("v"), Lease: seedLease, PrevKv: true},
		{Key: []byte("c/1"), IgnoreValue: true, PrevKv: true},
		{Key: []byte("c/1"), Value: []byte("v"), IgnoreLease: true},
		{Key: []byte("b"), IgnoreValue: true, IgnoreLease: true},
		{Key: []byte("gone"), IgnoreLease: true},
		{Key: []byte("a"), Lease: 99},
		{Key: []byte("a"), Value: []byte("v"), IgnoreValue: true},
		{Value: []byte("v")},
	} {
		f.Add(mustMarshal(f, r))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := new(pb.PutRequest)
		if proto.Unmarshal(data, r) != nil {
			return
		}
		w := newWorld(t)
		m := seedKV(w)
		var want *pb.PutResponse
		wantErr := validPut(r)
		if wantErr == nil {
			if want, wantErr = m.putReq(r); wantErr == nil {
				want.Header = header(m.rev())
			}
		}
		got, err := w.kv().Put(w.ctx, proto.Clone(r).(*pb.PutRequest))
		expect(t, r, got, err, want, wantErr)
		w.sameKeySpace(m)
		w.noFailures()
	})
}

func FuzzDeleteRange(f *testing.F) {
	for _, r := range []*pb.DeleteRangeRequest{
		{Key: []byte("a")},
		{Key: []byte("a"), PrevKv: true},
		{Key: []byte("c/"), RangeEnd: []byte("c0"), PrevKv: true},
		{Key: []byte("\x00"), RangeEnd: []byte("\x00")},
		{Key: []byte("z"), RangeEnd: []byte("a")},
		{Key: []byte("nothing")},
		{},
	} {
		f.Add(mustMarshal(f, r))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := new(pb.DeleteRangeRequest)
		if proto.Unmarshal(data, r) != nil {
			return
		}
		w := newWorld(t)
		m := seedKV(w)
		var want *pb.DeleteRangeResponse
		wantErr := validDelete(r)
		if wantErr == nil {
			want = m.deleteReq(r)
			want.Header = header(m.rev())
		}
		got, err := w.kv().DeleteRange(w.ctx, proto.Clone(r).(*pb.DeleteRangeRequest))
		expect(t, r, got, err, want, wantErr)
		w.sameKeySpace(m)
		w.noFailures()
	})
}

// sameKeySpace checks that the store holds the model's current keys, that
// every revision still readable reads as the model's, and that the store
// is consistent with itself.
func (w *world) sameKeySpace(m *kvModel) {
	w.t.Helper()
	for rev := max(m.compact, 1); rev <= m.rev(); rev++ {
		all := &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: rev}
		got, err := w.reader.Range(all)
		if err != nil {
			w.t.Fatalf("read at %d: %v", rev, err)
		}
		want, _ := m.rangeReq(all)
		want.Header = &pb.ResponseHeader{Revision: m.rev()}
		if !proto.Equal(got, want) {
			w.t.Fatalf("key space at %d:\n%s\nwant\n%s", rev, prototext.Format(got), prototext.Format(want))
		}
	}
	if err := w.reader.CheckConsistency(); err != nil {
		w.t.Fatal(err)
	}
}

func mustMarshal(tb testing.TB, m proto.Message) []byte {
	tb.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestSeedKVMatchesModel: the fuzz targets' model starts where the store is.
func TestSeedKVMatchesModel(t *testing.T) {
	w := newWorld(t)
	m := seedKV(w)
	if m.rev() != 12 || w.reader.View().Rev != 12 {
		t.Fatalf("model at %d, store at %d, want 12", m.rev(), w.reader.View().Rev)
	}
	w.sameKeySpace(m)
}

package storeactor_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/storeactor"
)

// RangeCharged answers what Range answers, telling its Charge the bytes
// the key-values it builds take in the encoded response, key after key:
// at the end, all of them (one more than returned when a limit cuts the
// range, read to tell More); an error from the Charge stops the read and
// is its answer.
func TestRangeCharged(t *testing.T) {
	h := newHarness(t)
	rangeFixture(h)
	all := []byte{0}
	for _, req := range []*pb.RangeRequest{
		{Key: all, RangeEnd: all},
		{Key: all, RangeEnd: all, Limit: 3},
		{Key: all, RangeEnd: all, KeysOnly: true},
		{Key: all, RangeEnd: all, Revision: 6},
		{Key: all, RangeEnd: all, CountOnly: true},
		{Key: []byte("b"), RangeEnd: []byte("d")},
	} {
		want := h.rng(req)
		var built []int64
		got, err := h.reader.RangeCharged(req, func(n int64) error {
			built = append(built, n)
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", prototext.Format(req), err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("%s:\n%s\nRange:\n%s", prototext.Format(req), prototext.Format(got), prototext.Format(want))
		}
		kvs := want.Kvs
		if want.More {
			kvs = append(kvs, h.rng(&pb.RangeRequest{Key: append(bytes.Clone(kvs[len(kvs)-1].Key), 0), RangeEnd: req.RangeEnd, Limit: 1}).Kvs...)
		}
		var sum int64
		for i, kv := range kvs {
			sum += int64(proto.Size(&pb.RangeResponse{Kvs: []*mvccpb.KeyValue{kv}}))
			if i >= len(built) || built[i] != sum {
				t.Fatalf("%s: charged %v, want %d after key %d", prototext.Format(req), built, sum, i)
			}
		}
		if len(built) != len(kvs) {
			t.Fatalf("%s: charged %v for %d keys", prototext.Format(req), built, len(kvs))
		}
	}

	stop := errors.New("stop")
	calls := 0
	if _, err := h.reader.RangeCharged(&pb.RangeRequest{Key: all, RangeEnd: all}, func(int64) error {
		calls++
		return stop
	}); err != stop || calls != 1 {
		t.Fatalf("a Charge failing at once: %v after %d calls, want %v after 1", err, calls, stop)
	}
}

// KVFieldSize is what proto.Marshal takes for a key-value in a
// RangeResponse, whichever of its fields are set.
func TestKVFieldSize(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := func() int64 {
		switch r.IntN(4) {
		case 0:
			return 0
		case 1:
			return -r.Int64N(1 << 40)
		}
		return r.Int64N(1 << (r.IntN(62) + 1))
	}
	for range 2000 {
		kv := &mvccpb.KeyValue{Key: make([]byte, r.IntN(300)), Value: make([]byte, r.IntN(40000)),
			CreateRevision: n(), ModRevision: n(), Version: n(), Lease: n()}
		want := proto.Size(&pb.RangeResponse{Kvs: []*mvccpb.KeyValue{kv}})
		if got := storeactor.KVFieldSize(kv); got != want {
			t.Fatalf("KVFieldSize(%v) = %d, want %d", kv, got, want)
		}
	}
}

// TxnCharged answers what Txn answers, telling its Charge what the txn's
// ranges have built in all: each range's key-values as RangeCharged
// counts them, a single key once it is read, the ranges of the branch
// taken only (a txn with a nested txn is not read-only: it goes through
// raft, as in etcd); an error from the Charge stops the txn
// and is its answer.
func TestTxnCharged(t *testing.T) {
	h := newHarness(t)
	rangeFixture(h)
	all := []byte{0}
	rng := func(r *pb.RangeRequest) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: r}}
	}
	ranges := []*pb.RangeRequest{
		{Key: all, RangeEnd: all},
		{Key: []byte("b")},
		{Key: []byte("b"), RangeEnd: []byte("d"), Limit: 1},
		{Key: all, RangeEnd: all, CountOnly: true},
	}
	var ops []*pb.RequestOp
	var want int64
	for _, r := range ranges {
		ops = append(ops, rng(r))
		var built int64
		if _, err := h.reader.RangeCharged(r, func(n int64) error { built = n; return nil }); err != nil {
			t.Fatal(err)
		}
		if built == 0 {
			for _, kv := range h.rng(r).Kvs {
				built += int64(storeactor.KVFieldSize(kv))
			}
		}
		want += built
	}
	if want == 0 {
		t.Fatal("the fixture's ranges build nothing")
	}
	never := &pb.Compare{Key: []byte("b"), Target: pb.Compare_VERSION, Result: pb.Compare_EQUAL,
		TargetUnion: &pb.Compare_Version{Version: 1 << 40}}
	for _, req := range []*pb.TxnRequest{
		{Success: ops},
		{Compare: []*pb.Compare{never}, Success: []*pb.RequestOp{rng(ranges[0])}, Failure: ops},
	} {
		wantResp, err := h.reader.Txn(req)
		if err != nil {
			t.Fatal(err)
		}
		var last int64
		got, err := h.reader.TxnCharged(req, func(n int64) error {
			if n < last {
				t.Fatalf("%s: charged %d after %d", prototext.Format(req), n, last)
			}
			last = n
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", prototext.Format(req), err)
		}
		if !proto.Equal(got, wantResp) {
			t.Fatalf("%s:\n%s\nTxn:\n%s", prototext.Format(req), prototext.Format(got), prototext.Format(wantResp))
		}
		if last != want {
			t.Fatalf("%s: charged %d in all, want %d", prototext.Format(req), last, want)
		}
	}

	stop := errors.New("stop")
	if _, err := h.reader.TxnCharged(&pb.TxnRequest{Success: []*pb.RequestOp{rng(ranges[1])}}, func(int64) error {
		return stop
	}); err != stop {
		t.Fatalf("a Charge failing on a single key: %v, want %v", err, stop)
	}
}

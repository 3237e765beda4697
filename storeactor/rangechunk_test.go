package storeactor_test

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// A RangeStream chunk reads what Range reads, up to its limit — the same
// keys, values, More and header — but no further: its Count is how many
// keys it read, at most the limit plus one (etcd's range without the
// total count), so a chunk costs what it returns, not a walk over the rest
// of the range.
func TestRangeChunk(t *testing.T) {
	h := newHarness(t)
	rangeFixture(h)
	all, from := []byte{0}, []byte{0}
	for _, req := range []*pb.RangeRequest{
		{Key: all, RangeEnd: from, Limit: 1},
		{Key: all, RangeEnd: from, Limit: 2},
		{Key: all, RangeEnd: from, Limit: 6},
		{Key: all, RangeEnd: from, Limit: 7},
		{Key: all, RangeEnd: from, Limit: 100},
		{Key: all, RangeEnd: from},
		{Key: []byte("b"), RangeEnd: []byte("d"), Limit: 1},
		{Key: all, RangeEnd: from, Limit: 2, KeysOnly: true},
		{Key: all, RangeEnd: from, Limit: 2, Revision: 6},
		{Key: []byte("a"), Limit: 1},
		{Key: []byte("zz"), RangeEnd: from, Limit: 3},
	} {
		want := h.rng(req)
		got, err := h.reader.RangeChunk(req)
		if err != nil {
			t.Fatalf("chunk %s: %v", prototext.Format(req), err)
		}
		wantCount := want.Count
		if req.Limit > 0 {
			wantCount = min(wantCount, req.Limit+1)
		}
		if got.Count != wantCount {
			t.Errorf("chunk %s: count %d, want %d (keys read)", prototext.Format(req), got.Count, wantCount)
		}
		got.Count, want.Count = 0, 0
		if !proto.Equal(got, want) {
			t.Errorf("chunk %s:\n%s\nRange:\n%s", prototext.Format(req), prototext.Format(got), prototext.Format(want))
		}
	}
}

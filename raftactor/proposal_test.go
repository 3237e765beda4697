package raftactor_test

import (
	"encoding/binary"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/raftactor"
)

// A proposal's data is its id, then the request as a follower decodes it:
// nested messages (header, txn branches, their ops) come out as they went in.
func TestEncodeProposalRoundTrips(t *testing.T) {
	put := func(k, v string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(v), Lease: 7}}}
	}
	reqs := []*pb.InternalRaftRequest{
		{Put: &pb.PutRequest{Key: []byte("k"), Value: make([]byte, 300)}},
		{Header: &pb.RequestHeader{Username: "bench", AuthRevision: 12}, Put: &pb.PutRequest{Key: []byte("k"), PrevKv: true}},
		{Header: &pb.RequestHeader{Username: "u"}, Txn: &pb.TxnRequest{
			Compare: []*pb.Compare{{Key: []byte("a"), Target: pb.Compare_VALUE, TargetUnion: &pb.Compare_Value{Value: []byte("x")}}},
			Success: []*pb.RequestOp{put("a", "1"), {Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: []*pb.RequestOp{put("b", "2")}}}}},
			Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z")}}}},
		}},
	}
	for i, r := range reqs {
		data, err := raftactor.EncodeProposal(uint64(1000+i), r)
		if err != nil {
			t.Fatal(err)
		}
		if id := binary.BigEndian.Uint64(data); id != uint64(1000+i) {
			t.Fatalf("id %d", id)
		}
		got := new(pb.InternalRaftRequest)
		if err := proto.Unmarshal(data[8:], got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, r) || len(data)-8 != proto.Size(r) {
			t.Fatalf("request %d: decoded %v, want %v", i, got, r)
		}
	}
}

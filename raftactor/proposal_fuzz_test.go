package raftactor

import (
	"encoding/binary"
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/storeactor"
)

// FuzzProposal decodes a raft entry's data as the raft actor and the store
// do: the proposal id (proposalID), then the InternalRaftRequest. Short
// data must be refused, not read past; a request that decodes must encode
// again to the same id and the same request, with RequestSize its size,
// and have a request type the metrics can name.
func FuzzProposal(f *testing.F) {
	for _, r := range []*pb.InternalRaftRequest{
		{Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("v"), Lease: 7}},
		{Header: &pb.RequestHeader{ID: 9, Username: "u", AuthRevision: 3}, Txn: &pb.TxnRequest{
			Compare: []*pb.Compare{{Key: []byte("a"), TargetUnion: &pb.Compare_Version{Version: 1}}},
			Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{
				Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("a")}}}}}}}}}},
		{LeaseGrant: &pb.LeaseGrantRequest{ID: 5, TTL: 60}},
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: "u", HashedPassword: "aGFzaA=="}},
		{Put: &pb.PutRequest{Key: []byte("both")}, DeleteRange: &pb.DeleteRangeRequest{Key: []byte("set")}},
		{},
	} {
		data, err := encodeProposal(0x0102030405060708, r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := proposalID(data)
		if len(data) < 8 {
			if !errors.Is(err, errShortEntry) {
				t.Fatalf("%d bytes: id %d, err %v", len(data), id, err)
			}
			return
		}
		if err != nil || id != binary.BigEndian.Uint64(data) {
			t.Fatalf("id %x, err %v", id, err)
		}
		req := new(pb.InternalRaftRequest)
		if proto.Unmarshal(data[8:], req) != nil {
			return // the store refuses it (a poison entry)
		}
		if typ := storeactor.RequestType(req); typ < 0 || typ >= storeactor.NumRequestTypes {
			t.Fatalf("request type %d", typ)
		}
		again, err := encodeProposal(id, req)
		if err != nil {
			t.Fatalf("%s does not encode: %v", prototext.Format(req), err)
		}
		if RequestSize(again) != proto.Size(req) {
			t.Fatalf("request size %d, proto size %d", RequestSize(again), proto.Size(req))
		}
		back := new(pb.InternalRaftRequest)
		if gotID, _ := proposalID(again); gotID != id || proto.Unmarshal(again[8:], back) != nil || !proto.Equal(back, req) {
			t.Fatalf("%s encodes as %x and decodes as %s", prototext.Format(req), again, prototext.Format(back))
		}
	})
}

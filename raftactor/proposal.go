package raftactor

import (
	"encoding/binary"
	"errors"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// A proposal's raft entry data is the proposing node's request id (8 bytes,
// big endian) followed by the encoded InternalRaftRequest. The id lets the
// raft actor find the waiting client without decoding the request.
func encodeProposal(id uint64, r *pb.InternalRaftRequest) ([]byte, error) {
	buf := make([]byte, 8, 8+proto.Size(r))
	binary.BigEndian.PutUint64(buf, id)
	// r is unchanged since Size: its nested messages' sizes are reused.
	return proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(buf, r)
}

var errShortEntry = errors.New("raftactor: entry data shorter than its id")

func proposalID(data []byte) (uint64, error) {
	if len(data) < 8 {
		return 0, errShortEntry
	}
	return binary.BigEndian.Uint64(data), nil
}

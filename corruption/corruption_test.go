package corruption

import (
	"context"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"

	"github.com/metastore/metastore/storeactor"
)

func peer(id uint64, rev, compact int64, hash uint32) PeerHash {
	return PeerHash{ID: id, Resp: &pb.HashKVResponse{Header: &pb.ResponseHeader{MemberId: id, Revision: rev}, Hash: hash, CompactRevision: compact}}
}

func TestCorruptedDecisions(t *testing.T) {
	leader := storeactor.KVHash{Hash: 7, Revision: 10, CompactRevision: 3, CurrentRevision: 12}
	for _, tc := range []struct {
		name          string
		first, second storeactor.KVHash
		peers         []PeerHash
		want          uint64
	}{
		{"all agree", leader, leader, []PeerHash{peer(2, 10, 3, 7), peer(3, 12, 3, 7)}, 0},
		{"hash differs, same compaction", leader, leader, []PeerHash{peer(2, 10, 3, 7), peer(3, 10, 3, 8)}, 3},
		{"hash differs, other compaction: skipped", leader, leader, []PeerHash{peer(2, 10, 2, 8)}, 0},
		{"follower ahead of the leader", leader, leader, []PeerHash{peer(2, 13, 3, 7)}, 2},
		{"follower compacted further", leader, leader, []PeerHash{peer(2, 10, 4, 9)}, 2},
		{"unreachable and slow peers skipped", leader, leader, []PeerHash{{ID: 2, Err: rpctypes.ErrGRPCFutureRev}, {ID: 3, Err: context.DeadlineExceeded}}, 0},
		{"leader's own hash changed under it", leader, storeactor.KVHash{Hash: 9, Revision: 10, CompactRevision: 3, CurrentRevision: 12}, nil, 1},
	} {
		if got := corrupted(zap.NewNop(), 1, tc.first, tc.second, tc.peers); got != tc.want {
			t.Errorf("%s: alarm for %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestInitialCheck(t *testing.T) {
	local := func(int64) (storeactor.KVHash, error) {
		return storeactor.KVHash{Hash: 7, Revision: 10, CompactRevision: 3, CurrentRevision: 10}, nil
	}
	check := func(peers ...PeerHash) error {
		return InitialCheck(context.Background(), zap.NewNop(), Hashes{Self: 1, Local: local,
			Peers: func(context.Context, int64) []PeerHash { return peers }})
	}
	if err := check(peer(2, 10, 3, 7), PeerHash{ID: 3, Err: rpctypes.ErrGRPCCompacted}); err != nil {
		t.Fatalf("agreeing peers: %v", err)
	}
	if err := check(peer(2, 10, 2, 8)); err != nil {
		t.Fatalf("other compaction point: %v", err)
	}
	err := check(peer(2, 10, 3, 7), peer(3, 10, 3, 8))
	if err == nil || !strings.Contains(err.Error(), "1 found data inconsistency with peers") {
		t.Fatalf("mismatch: %v", err)
	}
}

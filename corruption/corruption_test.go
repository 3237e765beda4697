package corruption

import (
	"context"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"

	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
)

// wait bounds every wait for something that must happen; passing tests
// never reach it.
const wait = 5 * time.Second

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

// A check that panics (here: hashing the local store) does not take the
// process down: the panic is recovered, logged and counted, and the next
// tick checks again.
func TestCheckerSurvivesAPanickingCheck(t *testing.T) {
	kit := testkit.New(t)
	clock := testkit.NewFakeClock(time.Unix(0, 0))
	hashed := make(chan int, 2)
	calls := 0
	cfg := Config{
		Hashes: Hashes{Self: 1,
			Local: func(int64) (storeactor.KVHash, error) {
				calls++ // checks never overlap: the actor starts one at a time
				hashed <- calls
				if calls == 1 {
					panic("hash failed")
				}
				return storeactor.KVHash{Hash: 7, Revision: 10, CurrentRevision: 10}, nil
			},
			Peers: func(context.Context, int64) []PeerHash { return nil },
		},
		Interval: time.Minute, Timeout: time.Second,
		Leader:           func() bool { return true },
		LinearizableRead: func(context.Context) error { return nil },
		Alarm:            func(id uint64) { t.Errorf("alarm raised for %x", id) },
		Clock:            clock, Logger: zap.NewNop(),
	}
	tap := kit.NewTap(testkit.WithFilter(func(m any) bool { _, ok := m.(checked); return ok }))
	kit.Spawn(tap.Props(New(cfg)))
	clock.WaitPending(1, wait)
	reg := testkit.Registry(t)
	before := testkit.Gather(t, reg).Must(t, "metastore_recovered_panics_total", "where", "corruption")

	nextHash := func() int {
		t.Helper()
		select {
		case n := <-hashed:
			return n
		case <-time.After(wait):
			t.Fatal("no check ran")
			return 0
		}
	}
	clock.Advance(time.Minute)
	if n := nextHash(); n != 1 {
		t.Fatalf("first check hashed %d times", n)
	}
	testkit.ExpectTapped[checked](tap, wait) // the panicked check has ended
	if got := testkit.Gather(t, reg).Must(t, "metastore_recovered_panics_total", "where", "corruption") - before; got != 1 {
		t.Fatalf("metastore_recovered_panics_total{where=corruption} grew by %v, want 1", got)
	}

	clock.Advance(time.Minute)
	if n := nextHash(); n != 2 {
		t.Fatalf("the next tick's check hashed as call %d", n)
	}
	testkit.ExpectTapped[checked](tap, wait)
}

package raftactor

import (
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.uber.org/zap"
)

// --pre-vote=false reaches raft: a voter whose election timeout passes
// campaigns for real (candidate, a new term) instead of first asking
// whether it could win (pre-candidate, same term).
func TestPreVoteSetting(t *testing.T) {
	for _, tc := range []struct {
		disable bool
		want    raft.StateType
	}{{false, raft.StatePreCandidate}, {true, raft.StateCandidate}} {
		c, err := newCore(coreConfig{
			ID: 1, ElectionTicks: 10, TickInterval: 100 * time.Millisecond, SnapshotCount: 100, CatchUp: 10,
			Logger: zap.NewNop(), Peers: []raft.Peer{{ID: 1}, {ID: 2}, {ID: 3}}, DisablePreVote: tc.disable,
		}, raft.NewMemoryStorage(), false, newClients(), 0)
		if err != nil {
			t.Fatal(err)
		}
		// Raft campaigns only once the bootstrap conf changes are applied.
		for c.rn.HasReady() {
			rd := c.rn.Ready()
			if err := c.ms.Append(rd.Entries); err != nil {
				t.Fatal(err)
			}
			c.rn.Advance(rd)
		}
		for range 20 { // past the largest randomized election timeout
			c.rn.Tick()
		}
		if got := c.rn.BasicStatus().RaftState; got != tc.want {
			t.Errorf("pre-vote disabled=%v: %v after an election timeout, want %v", tc.disable, got, tc.want)
		}
	}
}

package raftactor

import (
	"fmt"
	"math"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/raftwal"
	"github.com/metastore/metastore/storeactor"
)

// ForceNewCluster is etcd's --force-new-cluster: it rewrites member
// self's durable raft log, before the raft actor starts on it, so that
// the member comes back as the only voter of its cluster (same cluster
// id, same data), the way a cluster that lost its quorum for good is
// brought back from one survivor and grown again with MemberAdd.
//
// As etcd's bootstrapWALFromSnapshot does with its WAL:
//   - the commit index is raised to what the store has applied if the
//     saved one is behind (storeApplied);
//   - entries after it are discarded: uncommitted, no quorum will ever
//     decide them now;
//   - conf change entries removing every other member of the log's
//     configuration (the truncation point's ConfState and the committed
//     conf changes after it) are appended and marked committed.
//
// Nothing else is special: the raft actor starts on that log as after any
// restart, hands the new entries to the store, which removes the members
// from the membership (recording its verdicts, as for a MemberRemove),
// and applies to raft what the store decided. So the store's membership
// and raft's ConfState agree, and go on agreeing after a restart without
// the flag: the removals are committed entries of the log.
//
// Unlike etcd, a learner is promoted first (etcd would remove every voter
// and stop), and a member that is not in its log's configuration
// (removed) is refused rather than added back with a made-up peer URL.
//
// A member with no raft state yet is left alone: it starts as configured,
// as etcd ignores the flag when there is no WAL.
func ForceNewCluster(db *pebble.DB, wal *raftwal.WAL, self, clusterID, storeApplied uint64, lg *zap.Logger) error {
	ms, _, exists, err := loadLog(db, wal, 0, 0, lg) // forceNewLog raises the commit itself
	if err != nil {
		return fmt.Errorf("raftactor: force new cluster: %w", err)
	}
	if !exists {
		lg.Info("ignoring --force-new-cluster: the member has no raft log yet and starts as configured",
			zap.String("local-member-id", fmt.Sprintf("%x", self)))
		return nil
	}
	f, err := forceNewLog(ms, self, storeApplied)
	if err != nil {
		return fmt.Errorf("raftactor: force new cluster: %w", err)
	}
	if err := f.write(wal); err != nil {
		return fmt.Errorf("raftactor: force new cluster: failed to save hard state and entries: %w", err)
	}
	if f.last > f.commit {
		lg.Info("discarding uncommitted WAL entries",
			zap.Uint64("entry-index", f.commit+1),
			zap.Uint64("commit-index-from-wal", f.commit),
			zap.Uint64("number-of-discarded-entries", f.last-f.commit))
	}
	removed := make([]string, len(f.removed))
	for i, id := range f.removed {
		removed[i] = fmt.Sprintf("%x", id)
	}
	lg.Info("forcing restart member",
		zap.String("cluster-id", fmt.Sprintf("%x", clusterID)),
		zap.String("local-member-id", fmt.Sprintf("%x", self)),
		zap.Uint64("wal-commit-index", f.walCommit),
		zap.Uint64("commit-index", f.hs.GetCommit()),
		zap.Strings("removed-member-ids", removed),
		zap.Bool("promoted-from-learner", f.promoted))
	lg.Warn("--force-new-cluster is set: remove it once the cluster is recovered; every restart with it " +
		"drops uncommitted entries and removes every other member again")
	return nil
}

// forced is a log rewritten by forceNewLog.
type forced struct {
	walCommit uint64            // the commit index saved
	commit    uint64            // the last entry kept: max(walCommit, the store's applied index)
	last      uint64            // the saved log's last index: commit+1..last are discarded
	ents      []*raftpb.Entry   // the conf changes appended after commit, committed
	hs        *raftpb.HardState // the hard state to save
	removed   []uint64          // the members ents remove
	promoted  bool              // ents begin with the promotion of self, a learner
}

// forceNewLog decides how --force-new-cluster rewrites the log in ms
// (see ForceNewCluster); it changes nothing.
func forceNewLog(ms *raft.MemoryStorage, self, storeApplied uint64) (*forced, error) {
	snap, err := ms.Snapshot()
	if err != nil {
		return nil, err
	}
	hs, _, err := ms.InitialState()
	if err != nil {
		return nil, err
	}
	first, _ := ms.FirstIndex()
	last, _ := ms.LastIndex()
	f := &forced{walCommit: hs.GetCommit(), commit: max(hs.GetCommit(), storeApplied), last: last}
	if f.commit > last {
		// The store installed a leader's snapshot and the member stopped
		// before the log recorded it: the log cannot say who the members
		// were at the store's point.
		return nil, fmt.Errorf("the store has applied index %d, beyond the raft log's last index %d (a snapshot install was interrupted)", f.commit, last)
	}
	var ents []*raftpb.Entry
	if f.commit >= first {
		if ents, err = ms.Entries(first, f.commit+1, math.MaxUint64); err != nil {
			return nil, err
		}
	}
	voters, learners, err := configuration(snap.GetMetadata().GetConfState(), ents)
	if err != nil {
		return nil, err
	}
	learner := slices.Contains(learners, self)
	if !learner && !slices.Contains(voters, self) {
		return nil, fmt.Errorf("member %x is not in its raft log's configuration (voters %x, learners %x): it was removed and cannot force a new cluster", self, voters, learners)
	}
	// Entries of term 1 are raft's bootstrap entries, which the store
	// never refuses: a member that never saw an election writes its
	// changes at term 2, under the rules of any other change.
	term := max(hs.GetTerm(), 2)
	var ccs []*raftpb.ConfChange
	if learner {
		// Promoted first: raft refuses a configuration without voters.
		ccs = append(ccs, &raftpb.ConfChange{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: proto.Uint64(self), Context: storeactor.PromoteContext})
		f.promoted = true
	}
	for _, id := range slices.Concat(voters, learners) {
		if id != self {
			ccs = append(ccs, &raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(id)})
			f.removed = append(f.removed, id)
		}
	}
	for i, cc := range ccs {
		data, err := proto.Marshal(cc)
		if err != nil {
			return nil, err
		}
		f.ents = append(f.ents, &raftpb.Entry{Type: raftpb.EntryConfChange.Enum(), Term: proto.Uint64(term),
			Index: proto.Uint64(f.commit + 1 + uint64(i)), Data: data})
	}
	slices.Sort(f.removed)
	f.hs = &raftpb.HardState{Term: proto.Uint64(term), Vote: proto.Uint64(hs.GetVote()), Commit: proto.Uint64(f.commit + uint64(len(f.ents)))}
	if term != hs.GetTerm() {
		f.hs.Vote = proto.Uint64(0)
	}
	return f, nil
}

// configuration is raft's configuration after the conf change entries of
// ents, starting from cs: the ids each change adds or removes, as etcd's
// GetEffectiveNodeIDsFromWALEntries counts them (a change the store
// refused counts too; removing a member that is not one is refused in
// turn, and changes nothing).
func configuration(cs *raftpb.ConfState, ents []*raftpb.Entry) (voters, learners []uint64, err error) {
	voters, learners = slices.Clone(cs.GetVoters()), slices.Clone(cs.GetLearners())
	drop := func(ids []uint64, id uint64) []uint64 {
		return slices.DeleteFunc(ids, func(x uint64) bool { return x == id })
	}
	for _, e := range ents {
		switch e.GetType() {
		case raftpb.EntryConfChange:
		case raftpb.EntryConfChangeV2:
			return nil, nil, fmt.Errorf("entry %d: ConfChangeV2 is not supported", e.GetIndex())
		default:
			continue
		}
		cc := new(raftpb.ConfChange)
		if err := proto.Unmarshal(e.GetData(), cc); err != nil {
			return nil, nil, fmt.Errorf("entry %d: %w", e.GetIndex(), err)
		}
		id := cc.GetNodeId()
		if id == 0 {
			continue
		}
		switch cc.GetType() {
		case raftpb.ConfChangeAddNode:
			voters, learners = append(drop(voters, id), id), drop(learners, id)
		case raftpb.ConfChangeAddLearnerNode:
			voters, learners = drop(voters, id), append(drop(learners, id), id)
		case raftpb.ConfChangeRemoveNode:
			voters, learners = drop(voters, id), drop(learners, id)
		}
	}
	slices.Sort(voters)
	slices.Sort(learners)
	return voters, learners, nil
}

// write makes the rewritten log durable in one synced write: the
// discarded entries truncated, the conf changes and the hard state saved.
func (f *forced) write(wal *raftwal.WAL) error {
	if err := wal.AppendTruncate(f.commit); err != nil {
		return err
	}
	if err := wal.AppendEntries(f.ents); err != nil {
		return err
	}
	if err := wal.AppendHardState(f.hs); err != nil {
		return err
	}
	return wal.Commit(true)
}

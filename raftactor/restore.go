package raftactor

import (
	"errors"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// WriteRestoredState replaces, in b, the raft state of a DB restored from a
// snapshot (`metastoreutl snapshot restore`) with the state a member of a
// new cluster starts from:
//
//   - every 'r' key (log entries, hard state, truncation point) is deleted:
//     the old cluster's log and membership are dropped;
//   - the truncation point ('r' 's') is set at index/term, the store's last
//     applied entry (its meta "mapplied"), with voters as the ConfState;
//   - the hard state ('r' 'h') is term = term, commit = index, no vote.
//
// start() then loads an empty log after index: raft begins with Applied =
// index and the given voters, a single voter campaigns at once, and the
// first entry it appends (its empty leader entry, at index+1, term+1) and
// every one after it are applied by the store as usual; the store, which
// has applied index, skips nothing and misses nothing.
//
// index 0 (a store that never applied an entry) writes no state: the
// member then bootstraps its log from its peers like a brand-new one.
//
// etcd's restore instead starts a new log at index 1 with one
// ConfChangeAddNode entry per member and forces its consistent index to
// match; MetaStore keeps the store's applied index so that the store's
// own bookkeeping (mapplied, skip-what-was-applied on replay) needs no
// rewriting.
func WriteRestoredState(b *pebble.Batch, index, term uint64, voters []uint64) error {
	if len(voters) == 0 {
		return errors.New("raftactor: restore needs at least one voter")
	}
	if index > 0 && term == 0 {
		return errors.New("raftactor: restore at a non-zero index needs its term")
	}
	if err := b.DeleteRange([]byte{'r'}, []byte{'r' + 1}, nil); err != nil {
		return err
	}
	if index == 0 {
		return nil
	}
	meta := &raftpb.SnapshotMetadata{
		Index:     proto.Uint64(index),
		Term:      proto.Uint64(term),
		ConfState: &raftpb.ConfState{Voters: append([]uint64(nil), voters...)},
	}
	data, err := proto.Marshal(meta)
	if err != nil {
		return err
	}
	if err := b.Set(keySnapshot, data, nil); err != nil {
		return err
	}
	hs := &raftpb.HardState{Term: proto.Uint64(term), Commit: proto.Uint64(index)}
	if data, err = proto.Marshal(hs); err != nil {
		return err
	}
	return b.Set(keyHardState, data, nil)
}

package faults

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/storeactor"
)

// What a crashed disk holds, read before any member starts on it: the
// store's applied index (its View, as the store loads it) against the
// raft log (the raft actor's 'r' keys, laid out as raftactor/log.go
// documents: 'rh' hard state, 'rs' last truncation or installed snapshot,
// 're' + big-endian index for each entry).

type restState struct {
	empty                bool // no DB at all
	applied, appliedTerm uint64
	rev                  int64
	commit               uint64
	snapIndex, snapTerm  uint64
	first, last          uint64   // the entries in the log; 0, 0: none
	terms                []uint64 // their terms, first to last
	holes                []string
	// snapFiles are what the snapshot folder holds: checkpoints being
	// sent (checkpoint-*) or received (recv-*), none of which a restart
	// resumes.
	snapFiles []string
}

// readRest opens the DB on fs read-only (the crash clone is not changed)
// and reads its raft and store state.
func readRest(fs vfs.FS, dataDir string) (restState, error) {
	var rs restState
	opts := storeactor.PebbleOptions()
	opts.FS, opts.ReadOnly = fs, true
	dir := fs.PathJoin(dataDir, "member", "pebble")
	if names, err := fs.List(dir); err != nil || len(names) == 0 {
		rs.empty = true // what a member finds on a new disk
		return rs, nil
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return rs, fmt.Errorf("open the crashed disk's DB: %w", err)
	}
	defer db.Close()
	r, err := storeactor.NewReader(db)
	if err != nil {
		return rs, fmt.Errorf("load the store: %w", err)
	}
	v := r.View()
	rs.applied, rs.appliedTerm, rs.rev = v.Applied, v.AppliedTerm, v.Rev
	hs, snap := new(raftpb.HardState), new(raftpb.SnapshotMetadata)
	for key, m := range map[string]proto.Message{"rh": hs, "rs": snap} {
		b, closer, err := db.Get([]byte(key))
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return rs, err
		}
		err = proto.Unmarshal(b, m)
		closer.Close()
		if err != nil {
			return rs, fmt.Errorf("decode %q: %w", key, err)
		}
	}
	rs.commit, rs.snapIndex, rs.snapTerm = hs.GetCommit(), snap.GetIndex(), snap.GetTerm()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte("re"), UpperBound: []byte("rf")})
	if err != nil {
		return rs, err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		index := binary.BigEndian.Uint64(it.Key()[2:])
		e := new(raftpb.Entry)
		if err := proto.Unmarshal(it.Value(), e); err != nil {
			return rs, fmt.Errorf("decode entry %d: %w", index, err)
		}
		switch {
		case e.GetIndex() != index:
			rs.holes = append(rs.holes, fmt.Sprintf("entry %d stored under index %d", e.GetIndex(), index))
		case rs.last > 0 && index != rs.last+1:
			rs.holes = append(rs.holes, fmt.Sprintf("entries %d..%d missing", rs.last+1, index-1))
		}
		if rs.first == 0 {
			rs.first = index
		}
		rs.last = index
		rs.terms = append(rs.terms, e.GetTerm())
	}
	if err := it.Error(); err != nil {
		return rs, err
	}
	rs.snapFiles, _ = fs.List(fs.PathJoin(dataDir, "member", "snap"))
	return rs, nil
}

// receiving: a checkpoint for a snapshot install was being received.
func (rs restState) receiving() bool {
	return slices.ContainsFunc(rs.snapFiles, func(f string) bool { return strings.HasPrefix(f, "recv-") })
}

// lastIndex is the last index raft has: the last entry, or the snapshot.
func (rs restState) lastIndex() uint64 { return max(rs.last, rs.snapIndex) }

// term is the term of the entry at index, if the log has it.
func (rs restState) term(index uint64) (uint64, bool) {
	switch {
	case index == rs.snapIndex && index > 0:
		return rs.snapTerm, true
	case rs.first > 0 && index >= rs.first && index <= rs.last && len(rs.holes) == 0:
		return rs.terms[index-rs.first], true
	}
	return 0, false
}

// check lists what a crash must never leave:
//   - a hole in the log, or a log that does not reach back to its
//     truncation point (raft would have nothing to hand on after it);
//   - a commit index past the log's end or below its truncation point
//     (raft refuses to start);
//   - a truncation point past the store's applied index (the entries in
//     between are gone, and the store never gets them);
//   - a store that applied past the commit index (the log does not say
//     what it applied) — unless midInstall, see aheadOfCommit;
//   - a store whose applied entry has another term in the log (it
//     applied an entry the log does not hold).
func (rs restState) check(midInstall bool) []string {
	if rs.empty {
		return nil
	}
	violations := append([]string(nil), rs.holes...)
	if rs.first > rs.snapIndex+1 {
		violations = append(violations, fmt.Sprintf("the log starts at %d, after its truncation point %d", rs.first, rs.snapIndex))
	}
	if rs.commit < rs.snapIndex {
		violations = append(violations, fmt.Sprintf("commit index %d below the truncation point %d", rs.commit, rs.snapIndex))
	}
	if rs.commit > rs.lastIndex() {
		violations = append(violations, fmt.Sprintf("commit index %d past the log's last index %d", rs.commit, rs.lastIndex()))
	}
	if rs.snapIndex > rs.applied {
		violations = append(violations, fmt.Sprintf("the log is truncated at %d, past the store's applied index %d", rs.snapIndex, rs.applied))
	}
	switch {
	case rs.aheadOfCommit() && !midInstall:
		violations = append(violations, fmt.Sprintf("the store applied index %d, past the commit index %d", rs.applied, rs.commit))
	case rs.aheadOfCommit():
	default:
		if t, ok := rs.term(rs.applied); ok && rs.applied > 0 && t != rs.appliedTerm {
			violations = append(violations, fmt.Sprintf("the store applied index %d at term %d, the log has term %d there", rs.applied, rs.appliedTerm, t))
		}
	}
	for i, v := range violations {
		violations[i] = fmt.Sprintf("at rest: %s (%v)", v, rs)
	}
	return violations
}

// aheadOfCommit: the store applied past the commit index. A snapshot
// install leaves that between its two durable steps: the store takes the
// leader's checkpoint (storeactor/install.go) before the raft actor
// records the snapshot and its commit index (raftactor.Node.persist and installInStore,
// which documents that the store's skipping of what it applied tolerates
// it). etcd records the snapshot first.
func (rs restState) aheadOfCommit() bool { return !rs.empty && rs.applied > rs.commit }

func (rs restState) String() string {
	if rs.empty {
		return "no DB"
	}
	s := fmt.Sprintf("store applied %d (term %d, rev %d); raft commit %d, truncated at %d, entries %d..%d",
		rs.applied, rs.appliedTerm, rs.rev, rs.commit, rs.snapIndex, rs.first, rs.last)
	if len(rs.snapFiles) > 0 {
		s += "; snapshot folder: " + strings.Join(rs.snapFiles, ",")
	}
	return s
}

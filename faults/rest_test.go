package faults

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/raftwal"
	"github.com/metastore/metastore/storeactor"
)

// What a crashed disk holds, read before any member starts on it: the
// store's applied index (its View, as the store loads it) against the
// raft log: its truncation point in pebble ('rs') and its entries and
// hard state in the raft log's WAL (member/raftlog), as raftactor/log.go
// documents, read as the raft actor loads them.

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
	snap := new(raftpb.SnapshotMetadata)
	if b, closer, err := db.Get([]byte("rs")); err == nil {
		err = proto.Unmarshal(b, snap)
		closer.Close()
		if err != nil {
			return rs, fmt.Errorf("decode the truncation point: %w", err)
		}
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return rs, err
	}
	wal, err := raftwal.OpenForReading(raftwal.Options{FS: fs, Dir: fs.PathJoin(dataDir, "member", "raftlog")})
	if err != nil {
		return rs, fmt.Errorf("open the crashed disk's raft log: %w", err)
	}
	defer wal.Close()
	hs, err := wal.HardState()
	if err != nil {
		return rs, err
	}
	// The raft actor raises a hard state the WAL got after a snapshot's
	// point (raftactor.loadLog) to that point.
	rs.commit, rs.snapIndex, rs.snapTerm = max(hs.GetCommit(), snap.GetIndex()), snap.GetIndex(), snap.GetTerm()
	if first, last := wal.Bounds(); first <= last {
		ents, err := wal.ReadEntries(first, last+1, 1<<62)
		if err != nil {
			return rs, err
		}
		for _, e := range ents {
			if rs.first == 0 {
				rs.first = e.GetIndex()
			}
			rs.last = e.GetIndex()
			rs.terms = append(rs.terms, e.GetTerm())
		}
		if uint64(len(ents)) != last-first+1 {
			rs.holes = append(rs.holes, fmt.Sprintf("entries %d..%d held, %d read", first, last, len(ents)))
		}
	}
	// ... and raises the commit index to the store's applied entry when the
	// log holds it (the hard state can be lost while the store's batch
	// is not).
	if t, ok := rs.term(rs.applied); ok && rs.applied > rs.commit && t == rs.appliedTerm {
		rs.commit = rs.applied
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

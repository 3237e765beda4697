package raftactor

import (
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/raftwal"
	"github.com/metastore/metastore/storeactor"
)

// The raft actor's durable state is in two places:
//
//   - its WAL (raftwal, Config.WAL): the log's entries and hard states;
//   - its part of the shared pebble DB:
//     'r' 's' -> raftpb.SnapshotMetadata of the last log truncation
//     'r' 'c' -> raftpb.ConfState in force (with the index it took effect)
//
// The truncation point is in pebble because writing it is what makes the
// store's applies up to it durable: the store commits to pebble without
// syncing, and the synced batch that records a truncation syncs pebble's
// WAL, which holds them. Only then are the WAL's segments up to it
// released (Node.writeTruncation).
//
// Raft reads the log through a logStorage: a raft.MemoryStorage that
// holds the entries since the last truncation and the newest of those kept
// for followers (at most about snapshot-count of them, and about
// Config.LogBytes of data), loaded at start, and below it the older
// entries kept for followers, read from the WAL.
//
// Before the WAL, the entries ('r' 'e' index) and the hard state ('r' 'h')
// were in pebble too: loadLog moves what it finds there to the WAL (a
// data dir of an older MetaStore, or one `metastoreutl snapshot restore`
// or `migrate` wrote, which seed a hard state there).
var (
	keyHardState = []byte("rh")
	keySnapshot  = []byte("rs")
	entryPrefix  = []byte("re")
)

// loadLog rebuilds the in-memory raft storage from the truncation point
// in pebble and the WAL. It reports whether any raft state existed (false
// on a brand-new data dir), and the index of the first entry the WAL
// holds: a truncation keeps CatchUp entries below the raft snapshot, which
// raft does not load but which are there to read (raft's first index when
// there are none).
//
// applied and appliedTerm are the store's last applied entry (0, 0: not
// to be used): the hard state's commit index is raised to it when the log
// holds that entry. The store applies only committed entries, but its
// writes and the WAL's hard states reach the disk apart: an unsynced hard
// state (raft syncs one only for a new term or vote, or with entries) can
// be lost with a power loss that the store's batch, synced by pebble for
// its own reasons (a memtable rotation, a truncation), survives; raft
// refuses to start with an applied index past its commit.
func loadLog(db *pebble.DB, wal *raftwal.WAL, applied, appliedTerm uint64, lg *zap.Logger) (ms *raft.MemoryStorage, savedFirst uint64, exists bool, err error) {
	if err := moveLogToWAL(db, wal, lg); err != nil {
		return nil, 0, false, err
	}
	ms = raft.NewMemoryStorage()
	snap := &raftpb.SnapshotMetadata{}
	if b, ok, err := get(db, keySnapshot); err != nil {
		return nil, 0, false, err
	} else if ok {
		if err := proto.Unmarshal(b, snap); err != nil {
			return nil, 0, false, fmt.Errorf("raftactor: snapshot metadata: %w", err)
		}
		if err := ms.ApplySnapshot(&raftpb.Snapshot{Metadata: snap}); err != nil {
			return nil, 0, false, err
		}
		exists = true
	}
	hs, err := wal.HardState()
	if err != nil {
		return nil, 0, false, err
	}
	if hs != nil {
		// A snapshot from the leader is recorded in pebble before the WAL
		// gets the hard state it brings: a crash between the two leaves
		// one older than the snapshot, which raft refuses to start from.
		if hs.GetCommit() < snap.GetIndex() {
			hs.Commit = proto.Uint64(snap.GetIndex())
		}
		if hs.GetTerm() < snap.GetTerm() {
			hs.Term, hs.Vote = proto.Uint64(snap.GetTerm()), proto.Uint64(0)
		}
		exists = true
	}
	first, _ := ms.FirstIndex()
	walFirst, walLast := wal.Bounds()
	switch {
	case walLast < snap.GetIndex():
		// A snapshot from the leader whose point reached pebble but
		// whose truncate record did not reach the WAL: write it now, or
		// the entries after the snapshot would not follow the WAL's.
		if err := wal.AppendTruncate(snap.GetIndex()); err != nil {
			return nil, 0, false, err
		}
		if err := wal.Commit(true); err != nil {
			return nil, 0, false, err
		}
		walFirst, walLast = wal.Bounds()
	case walFirst > first:
		return nil, 0, false, fmt.Errorf("raftactor: the raft log's WAL starts at entry %d, after the truncation point %d", walFirst, first-1)
	}
	savedFirst = first
	if walFirst <= walLast { // walFirst <= first: checked above
		savedFirst, exists = walFirst, true
	}
	if from := max(first, walFirst); from <= walLast {
		ents, err := wal.ReadEntries(from, walLast+1, math.MaxUint64)
		if err != nil {
			return nil, 0, false, err
		}
		if err := ms.Append(ents); err != nil {
			return nil, 0, false, err
		}
	}
	if hs != nil {
		if t, err := ms.Term(applied); err == nil && applied > hs.GetCommit() && appliedTerm != 0 && t == appliedTerm {
			hs.Commit = proto.Uint64(applied)
		}
		if err := ms.SetHardState(hs); err != nil {
			return nil, 0, false, err
		}
	}
	return ms, savedFirst, exists, nil
}

// moveLogToWAL moves the entries and hard state pebble holds (see above)
// to the WAL, synced, then deletes them from pebble. A crash in between
// moves them again: the WAL takes the same entries at the same indexes as
// a rewrite of its tail.
func moveLogToWAL(db *pebble.DB, wal *raftwal.WAL, lg *zap.Logger) error {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: entryPrefix, UpperBound: []byte("rf")})
	if err != nil {
		return err
	}
	defer it.Close()
	b := db.NewBatch()
	defer b.Close()
	moved := 0
	for ok := it.First(); ok; ok = it.Next() {
		e := new(raftpb.Entry)
		if err := proto.Unmarshal(it.Value(), e); err != nil {
			return fmt.Errorf("raftactor: entry: %w", err)
		}
		if err := wal.AppendEntries([]*raftpb.Entry{e}); err != nil {
			return err
		}
		if err := b.Delete(it.Key(), nil); err != nil {
			return err
		}
		moved++
	}
	if err := it.Error(); err != nil {
		return err
	}
	hs, ok, err := get(db, keyHardState)
	if err != nil {
		return err
	}
	if ok {
		h := new(raftpb.HardState)
		if err := proto.Unmarshal(hs, h); err != nil {
			return fmt.Errorf("raftactor: hard state: %w", err)
		}
		if err := wal.AppendHardState(h); err != nil {
			return err
		}
		if err := b.Delete(keyHardState, nil); err != nil {
			return err
		}
	}
	if b.Empty() {
		return nil
	}
	if err := wal.Commit(true); err != nil {
		return err
	}
	if err := storeactor.Commit(b, pebble.Sync); err != nil {
		return err
	}
	lg.Info("moved the raft log from pebble to its WAL", zap.Int("entries", moved), zap.Bool("hard-state", ok))
	return nil
}

// HasState reports whether the member's raft state was ever saved: a
// hard state or a truncation point, as loadLog finds them. A new cluster's
// member saves its bootstrap entries and hard state in its first Ready;
// until then it may bootstrap again, from the same initial cluster.
func HasState(db pebble.Reader, wal *raftwal.WAL) (bool, error) {
	if !wal.Empty() {
		return true, nil
	}
	for _, key := range [][]byte{keyHardState, keySnapshot} {
		if _, ok, err := get(db, key); err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func get(db pebble.Reader, key []byte) ([]byte, bool, error) {
	b, closer, err := db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), b...)
	return out, true, closer.Close()
}

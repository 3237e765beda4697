package raftactor

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The raft actor's part of the shared pebble DB:
//
//	'r' 'e' index(8) -> raftpb.Entry
//	'r' 'h'          -> raftpb.HardState
//	'r' 's'          -> raftpb.SnapshotMetadata of the last log truncation
//	'r' 'c'          -> raftpb.ConfState in force (with the index it took effect)
//
// The log in pebble is the durable copy; raft reads it through a
// logStorage: a raft.MemoryStorage that holds the entries since the last
// truncation and the newest of those kept for followers (at most about
// snapshot-count of them, and about Config.LogBytes of data), loaded at
// start, and below it the older entries kept for followers, from pebble. Entries are
// deleted one by one, never by a range deletion (Node.deleteEntries).
var (
	keyHardState = []byte("rh")
	keySnapshot  = []byte("rs")
	entryPrefix  = []byte("re")
)

func entryKey(index uint64) []byte { return appendEntryKey(nil, index) }

func appendEntryKey(dst []byte, index uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, entryPrefix...), index)
}

// loadLog rebuilds the in-memory raft storage from pebble. It reports
// whether any raft state existed (false on a brand-new data dir), and the
// index of the first entry pebble holds: a truncation keeps CatchUp
// entries below the raft snapshot, which raft does not load but which are
// there to delete (raft's first index when there are none).
func loadLog(db *pebble.DB) (ms *raft.MemoryStorage, savedFirst uint64, exists bool, err error) {
	ms = raft.NewMemoryStorage()
	if b, ok, err := get(db, keySnapshot); err != nil {
		return nil, 0, false, err
	} else if ok {
		meta := new(raftpb.SnapshotMetadata)
		if err := proto.Unmarshal(b, meta); err != nil {
			return nil, 0, false, fmt.Errorf("raftactor: snapshot metadata: %w", err)
		}
		if err := ms.ApplySnapshot(&raftpb.Snapshot{Metadata: meta}); err != nil {
			return nil, 0, false, err
		}
		exists = true
	}
	if b, ok, err := get(db, keyHardState); err != nil {
		return nil, 0, false, err
	} else if ok {
		hs := new(raftpb.HardState)
		if err := proto.Unmarshal(b, hs); err != nil {
			return nil, 0, false, fmt.Errorf("raftactor: hard state: %w", err)
		}
		if err := ms.SetHardState(hs); err != nil {
			return nil, 0, false, err
		}
		exists = true
	}
	first, _ := ms.FirstIndex()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: entryPrefix, UpperBound: []byte("rf")})
	if err != nil {
		return nil, 0, false, err
	}
	defer it.Close()
	savedFirst = first
	if it.First() {
		savedFirst = min(first, binary.BigEndian.Uint64(it.Key()[len(entryPrefix):]))
	}
	var ents []*raftpb.Entry
	for ok := it.SeekGE(entryKey(first)); ok; ok = it.Next() {
		e := new(raftpb.Entry)
		if err := proto.Unmarshal(it.Value(), e); err != nil {
			return nil, 0, false, fmt.Errorf("raftactor: entry: %w", err)
		}
		ents = append(ents, e)
		exists = true
	}
	if err := it.Error(); err != nil {
		return nil, 0, false, err
	}
	if err := ms.Append(ents); err != nil {
		return nil, 0, false, err
	}
	return ms, savedFirst, exists, nil
}

// HasState reports whether the member's raft state was ever saved: a
// hard state or a truncation point, as loadLog finds them. A new cluster's
// member saves its bootstrap entries and hard state in its first Ready;
// until then it may bootstrap again, from the same initial cluster.
func HasState(db pebble.Reader) (bool, error) {
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

// commit commits b, turning the panic pebble's fatal logger raises on a
// failed WAL write or sync (pebble does not return it from Commit) into an
// error: the raft actor must stop the member through its own failure path
// (nothing more acknowledged, OnFatal), not panic into a restart that goes
// on from a log whose write failed.
func commit(b *pebble.Batch, opts *pebble.WriteOptions) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	return b.Commit(opts)
}

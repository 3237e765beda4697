package raftactor

import (
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// logStorage is the raft.Storage raft reads its log through: the entries
// since a recent point in memory (a raft.MemoryStorage), and below it the
// older entries the WAL still holds for slow followers, read from it.
//
// Raft holds nothing it reads from storage, so only the memory tier
// costs memory: the core keeps it within a byte bound (core.truncate)
// while the durable log keeps catchUp entries whatever their size, as
// etcd keeps them — a follower behind by fewer than catchUp entries is
// sent entries, not a snapshot.
//
// What must hold: every index in [first, memory's first) is in the WAL
// and committed (so never rewritten by a new leader): entries go to
// the WAL before raft may read them (Node.persist), memory is compacted
// only up to what the store applied, and first only moves up, after a
// truncation's deletes are committed (Node.writeTruncation).
type logStorage struct {
	*raft.MemoryStorage
	// older reads entries [lo, hi) from the WAL, as many as fit in
	// maxSize but at least one, or fails; nil: no older tier (core
	// tests). A failed read is answered as compacted: raft then sends a
	// snapshot instead (it panics on any other storage error).
	older func(lo, hi, maxSize uint64) ([]*raftpb.Entry, error)
	// first is the first index the WAL holds.
	first uint64
}

// tiers returns the first index the older tier serves and the memory
// tier's first; the older tier is empty when the two are equal.
func (s *logStorage) tiers() (olderFrom, memFirst uint64) {
	memFirst, _ = s.MemoryStorage.FirstIndex()
	if s.older == nil || s.first == 0 {
		return memFirst, memFirst
	}
	return min(s.first, memFirst), memFirst
}

func (s *logStorage) FirstIndex() (uint64, error) {
	from, _ := s.tiers()
	return from, nil
}

func (s *logStorage) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	from, memFirst := s.tiers()
	if lo >= memFirst || lo < from {
		return s.MemoryStorage.Entries(lo, hi, maxSize)
	}
	ents, err := s.older(lo, min(hi, memFirst), maxSize)
	if err != nil {
		return nil, raft.ErrCompacted
	}
	if last := ents[len(ents)-1].GetIndex(); last+1 < min(hi, memFirst) || hi <= memFirst {
		return ents, nil // cut by maxSize, or all that was asked
	}
	size := entriesSize(ents)
	rest, err := s.MemoryStorage.Entries(memFirst, hi, maxSize-min(size, maxSize))
	if err != nil {
		return ents, nil // a prefix of what was asked is a valid answer
	}
	for _, e := range rest {
		if size += uint64(proto.Size(e)); size > maxSize {
			break
		}
		ents = append(ents, e)
	}
	return ents, nil
}

func (s *logStorage) Term(i uint64) (uint64, error) {
	from, memFirst := s.tiers()
	// Memory knows the term of the entry just before its first.
	if i+1 >= memFirst || i < from {
		return s.MemoryStorage.Term(i)
	}
	ents, err := s.older(i, i+1, 0)
	if err != nil {
		return 0, raft.ErrCompacted
	}
	return ents[0].GetTerm(), nil
}

// entriesSize is the size raft limits a batch of entries by.
func entriesSize(ents []*raftpb.Entry) uint64 {
	n := uint64(0)
	for _, e := range ents {
		n += uint64(proto.Size(e))
	}
	return n
}

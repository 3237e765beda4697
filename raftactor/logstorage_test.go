package raftactor

import (
	"errors"
	"math"
	"slices"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// tieredLog is a logStorage with entries 1..10 (entry i in term 1 + i/4,
// 100 bytes of data): 6..10 in memory (compacted at 5), all of them in
// the older tier, which fails while failing is set.
func tieredLog(t *testing.T) (*logStorage, *bool) {
	t.Helper()
	all := make([]*raftpb.Entry, 0, 10)
	for i := uint64(1); i <= 10; i++ {
		all = append(all, &raftpb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(1 + i/4), Data: make([]byte, 100)})
	}
	ms := raft.NewMemoryStorage()
	if err := ms.ApplySnapshot(&raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(5), Term: proto.Uint64(2)}}); err != nil {
		t.Fatal(err)
	}
	if err := ms.Append(all[5:]); err != nil {
		t.Fatal(err)
	}
	failing := new(bool)
	s := &logStorage{MemoryStorage: ms, first: 1,
		older: func(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
			if *failing {
				return nil, errors.New("disk")
			}
			var out []*raftpb.Entry
			size := uint64(0)
			for _, e := range all[lo-1 : hi-1] {
				if sz := uint64(proto.Size(e)); len(out) > 0 && size+sz > maxSize {
					break
				} else {
					size += sz
				}
				out = append(out, e)
			}
			return out, nil
		},
	}
	return s, failing
}

func indexes(ents []*raftpb.Entry) []uint64 {
	var out []uint64
	for _, e := range ents {
		out = append(out, e.GetIndex())
	}
	return out
}

func TestLogStorageReadsAcrossTiers(t *testing.T) {
	s, failing := tieredLog(t)
	if first, _ := s.FirstIndex(); first != 1 {
		t.Fatalf("first index %d, want the older tier's 1", first)
	}
	one := uint64(proto.Size(&raftpb.Entry{Index: proto.Uint64(1), Term: proto.Uint64(1), Data: make([]byte, 100)}))
	for _, tc := range []struct {
		lo, hi, maxSize uint64
		want            []uint64
	}{
		{2, 5, math.MaxUint64, []uint64{2, 3, 4}},          // older tier only
		{3, 9, math.MaxUint64, []uint64{3, 4, 5, 6, 7, 8}}, // across the tiers
		{7, 11, math.MaxUint64, []uint64{7, 8, 9, 10}},     // memory only
		{3, 9, 2 * one, []uint64{3, 4}},                    // cut by size in the older tier
		{4, 9, 3 * one, []uint64{4, 5, 6}},                 // cut by size in memory
		{3, 9, 0, []uint64{3}},                             // at least one
	} {
		ents, err := s.Entries(tc.lo, tc.hi, tc.maxSize)
		if err != nil || !slices.Equal(indexes(ents), tc.want) {
			t.Errorf("Entries(%d, %d, %d) = %v, %v; want %v", tc.lo, tc.hi, tc.maxSize, indexes(ents), err, tc.want)
		}
	}
	for i, want := range map[uint64]uint64{2: 1, 4: 2, 5: 2, 9: 3} {
		if term, err := s.Term(i); err != nil || term != want {
			t.Errorf("Term(%d) = %d, %v; want %d", i, term, err, want)
		}
	}
	if _, err := s.Term(0); !errors.Is(err, raft.ErrCompacted) {
		t.Errorf("Term(0): %v, want ErrCompacted", err)
	}

	// A failed read of the older tier is answered as compacted: raft
	// then sends a snapshot instead of panicking.
	*failing = true
	if _, err := s.Entries(3, 9, math.MaxUint64); !errors.Is(err, raft.ErrCompacted) {
		t.Errorf("Entries while the disk fails: %v, want ErrCompacted", err)
	}
	if _, err := s.Term(2); !errors.Is(err, raft.ErrCompacted) {
		t.Errorf("Term while the disk fails: %v, want ErrCompacted", err)
	}
	if ents, err := s.Entries(6, 8, math.MaxUint64); err != nil || len(ents) != 2 {
		t.Errorf("memory tier while the disk fails: %v, %v", indexes(ents), err)
	}
}

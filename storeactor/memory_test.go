package storeactor_test

import (
	"testing"

	"github.com/metastore/metastore/storeactor"
)

func TestSizeMemory(t *testing.T) {
	lean := storeactor.SizeMemory(0)
	if lean.GoLimit != 0 || lean.MemTable == 0 || lean.BlockCache == 0 || lean.LatestHalf == 0 || lean.KeyFilter == 0 ||
		lean.CountMirror == 0 {
		t.Fatalf("lean sizes %+v: want every size set and no Go limit", lean)
	}
	for _, limit := range []int64{64 << 20, 256 << 20, 1 << 30, 16 << 30, 1 << 40} {
		s := storeactor.SizeMemory(limit)
		if s.MemTable < 4<<20 || s.MemTable > 64<<20 {
			t.Errorf("limit %d: memtable %d outside 4-64 MiB", limit, s.MemTable)
		}
		if s.BlockCache < lean.BlockCache {
			t.Errorf("limit %d: block cache %d below the lean %d", limit, s.BlockCache, lean.BlockCache)
		}
		if s.GoLimit < 64<<20 {
			t.Errorf("limit %d: Go limit %d below 64 MiB", limit, s.GoLimit)
		}
		// What lives in the Go heap for good leaves requests most of it.
		if held := int64(s.RaftLog) + int64(s.KeyFilter) + int64(s.CountMirror); held > s.GoLimit/4 {
			t.Errorf("limit %d: raft log %d + key filter %d + count mirror %d = %d, more than a quarter of the Go limit %d",
				limit, s.RaftLog, s.KeyFilter, s.CountMirror, held, s.GoLimit)
		}
		// The parts add up to the limit unless the Go heap's floor lifts it.
		if total := s.PebbleBytes() + s.GoLimit; total != limit && s.GoLimit != 64<<20 {
			t.Errorf("limit %d: pebble %d + Go %d = %d", limit, s.PebbleBytes(), s.GoLimit, total)
		}
	}
	// A larger budget never shrinks a part.
	prev := storeactor.SizeMemory(64 << 20)
	for _, limit := range []int64{256 << 20, 1 << 30, 16 << 30} {
		s := storeactor.SizeMemory(limit)
		if s.MemTable < prev.MemTable || s.BlockCache < prev.BlockCache || s.LatestHalf < prev.LatestHalf || s.GoLimit < prev.GoLimit ||
			s.KeyFilter < prev.KeyFilter || s.CountMirror < prev.CountMirror || s.RaftLog < prev.RaftLog {
			t.Errorf("limit %d: %+v shrinks a part of %+v", limit, s, prev)
		}
		prev = s
	}
}

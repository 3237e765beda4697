package storeactor

import (
	"encoding/binary"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2"
)

// compactStep does one bounded slice of physical compaction and, if there is
// more, sends itself the next step: applies queued meanwhile run in between,
// so a large compaction never stops the world.
//
// For every key changed in (compactDone, CompactRev], all versions at or
// below CompactRev except the newest are deleted, and the newest too when
// it is a tombstone. History entries below CompactRev go as well (a watch
// can no longer start there); those at CompactRev stay, because etcd lets a
// watch start at the compaction revision and sees its events, deletes
// included. Steps end on whole main revisions, and
// the progress mark is written in the same batch, so a restart resumes
// where the last committed step ended; redoing a step is harmless.
func (s *Store) compactStep(ctx actor.Context) {
	target := s.cur.CompactRev
	if s.cur.CompactDone >= target {
		s.finishCompaction()
		return
	}
	lo := historyKey(nil, s.cur.CompactDone+1, 0)
	hi := historyKey(nil, target+1, 0)
	it, err := s.cfg.DB.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	must(err)
	keys := map[string]struct{}{}
	reached := target
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		main, _ := parseHistoryKey(it.Key())
		if n >= s.cfg.CompactChunk && main != reached {
			reached = main - 1 // stop on a main revision boundary
			break
		}
		reached = main
		keys[string(it.Value()[1:])] = struct{}{}
		n++
	}
	if !it.Valid() {
		reached = target
	}
	must(it.Close())

	b := s.cfg.DB.NewBatch()
	var freed int64
	for k := range keys {
		freed += compactKey(s.cfg.DB, b, []byte(k), target)
	}
	histEnd := historyKey(nil, min(reached+1, target), 0)
	freed += spanBytes(s.cfg.DB, historySpaceLow, histEnd)
	must(b.DeleteRange(historySpaceLow, histEnd, nil))
	s.cur.LiveBytes = max(0, s.cur.LiveBytes-freed)
	must(putU64(b, metaLive, uint64(s.cur.LiveBytes)))
	must(putU64(b, metaCompactDone, uint64(reached)))
	must(b.Commit(pebble.NoSync))
	must(b.Close())
	s.cur.CompactDone = reached
	s.publish()
	if reached < target {
		ctx.Send(ctx.Self(), compactStep{})
		return
	}
	s.finishCompaction()
}

// compactKey deletes the versions of key that no read at or above target
// can see, and returns their size (see View.LiveBytes).
func compactKey(db *pebble.DB, b *pebble.Batch, key []byte, target int64) (freed int64) {
	from := versionKey(nil, key, target)
	end := afterKeyPrefix(nil, from[:len(from)-8])
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: from, UpperBound: end})
	must(err)
	defer it.Close()
	if !it.First() {
		return 0
	}
	_, main := splitVersionKey(it.Key())
	v := it.Value()
	if len(v) > 0 && v[0]&flagTombstone != 0 {
		for ok := true; ok; ok = it.Next() {
			freed += int64(len(it.Key()) + len(it.Value()))
		}
		must(b.DeleteRange(from, end, nil))
		// The key is gone for good unless written again since: then its
		// 'l' entry holds a newer version and stays.
		if l, closer, err := db.Get(latestKey(nil, key)); err == nil {
			stale := len(l) >= 8 && int64(binary.BigEndian.Uint64(l)) == main
			closer.Close()
			if stale {
				must(b.Delete(latestKey(nil, key), nil))
			}
		}
		return freed
	}
	for it.Next() {
		freed += int64(len(it.Key()) + len(it.Value()))
	}
	must(b.DeleteRange(versionKey(nil, key, main-1), end, nil))
	return freed
}

// spanBytes is the size of the keys and values in [lo, hi).
func spanBytes(db pebble.Reader, lo, hi []byte) (n int64) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	must(err)
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		n += int64(len(it.Key()) + len(it.Value()))
	}
	return n
}

func (s *Store) finishCompaction() { s.compacting = false }

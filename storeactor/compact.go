package storeactor

import (
	"encoding/binary"
	"time"

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
// the progress mark and the hash of what was deleted (see HashKV) are
// written in the same batch, so a restart resumes where the last committed
// step ended; redoing a step is harmless.
func (s *Store) compactStep(ctx actor.Context) {
	target := s.cur.CompactRev
	if s.cur.CompactDone >= target {
		s.finishCompaction()
		return
	}
	start := time.Now()
	if s.compactStart.IsZero() {
		s.compactStart = start
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
	var freed, versions int64
	var gone uint32 // HashKV's share of the deleted versions
	for k := range keys {
		d := compactKey(s.cfg.DB, b, []byte(k), target)
		freed, versions, gone = freed+d.freed, versions+int64(d.n), gone+d.hash
	}
	must(recordCompacted(s.cfg.DB, b, gone))
	histEnd := historyKey(nil, min(reached+1, target), 0)
	freed += spanBytes(s.cfg.DB, historySpaceLow, histEnd)
	must(b.DeleteRange(historySpaceLow, histEnd, nil))
	s.cur.LiveBytes = max(0, s.cur.LiveBytes-freed)
	must(putU64(b, metaLive, uint64(s.cur.LiveBytes)))
	must(putU64(b, metaCompactDone, uint64(reached)))
	commitStart := time.Now()
	must(b.Commit(pebble.NoSync))
	commitSec.Observe(time.Since(commitStart).Seconds())
	must(b.Close())
	s.cur.CompactDone = reached
	s.publish()
	if afterCompactStep != nil {
		afterCompactStep()
	}
	dbCompactionKeys.Add(float64(versions))
	dbCompactionPauseMs.Observe(float64(time.Since(start).Milliseconds()))
	if reached < target {
		ctx.Send(ctx.Self(), compactStep{})
		return
	}
	s.finishCompaction()
}

// compactKey deletes the versions of key that no read at or above target
// can see, and returns what it deleted: their size (see View.LiveBytes),
// number and hash (see HashKV).
//
// A key with few doomed versions (the common case: a key overwritten a
// few times between compactions) gets one point tombstone per version;
// only a key with many gets a range tombstone. pebble estimates what point
// tombstones free from the table's properties, but what a range tombstone
// frees by reading the index of every table beneath it, again for each
// table a compaction writes it into: with one range tombstone per
// compacted key, that estimation took a core away from client requests
// while pebble compacted (a third of the CPU of a defragmentation after a
// large compaction).
func compactKey(db *pebble.DB, b *pebble.Batch, key []byte, target int64) pointDeletes {
	from := versionKey(nil, key, target)
	end := afterKeyPrefix(nil, from[:len(from)-8])
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: from, UpperBound: end})
	must(err)
	defer it.Close()
	if !it.First() {
		return pointDeletes{}
	}
	_, main := splitVersionKey(it.Key())
	v := it.Value()
	tombstone := len(v) > 0 && v[0]&flagTombstone != 0
	doomed := pointDeletes{b: b}
	if tombstone {
		doomed.add(it.Key(), v)
	}
	for it.Next() {
		doomed.add(it.Key(), it.Value())
	}
	if tombstone {
		doomed.commit(from, end)
		// The key is gone for good unless written again since: then its
		// 'l' entry holds a newer version and stays.
		if l, closer, err := db.Get(latestKey(nil, key)); err == nil {
			stale := len(l) >= 8 && int64(binary.BigEndian.Uint64(l)) == main
			closer.Close()
			if stale {
				must(b.Delete(latestKey(nil, key), nil))
			}
		}
		return doomed
	}
	doomed.commit(versionKey(nil, key, main-1), end)
	return doomed
}

// afterCompactStep, when set (tests), runs after each physical compaction
// step is published.
var afterCompactStep func()

// maxPointDeletes is the most versions of one key compactKey deletes with
// point tombstones; beyond it one range tombstone is cheaper to write and
// to read past.
const maxPointDeletes = 16

// pointDeletes collects the versions compactKey deletes: their keys while
// there are at most maxPointDeletes, their total size and hash always.
type pointDeletes struct {
	b     *pebble.Batch
	keys  [][]byte
	n     int
	freed int64
	hash  uint32 // sum of versionHash
}

func (d *pointDeletes) add(k, v []byte) {
	d.freed += int64(len(k) + len(v))
	d.hash += versionHash(k, v)
	d.n++
	if d.n <= maxPointDeletes {
		d.keys = append(d.keys, append([]byte(nil), k...))
	}
}

// commit writes the deletions into the batch: the collected point
// tombstones, or one range tombstone over [lo, hi) when there were too
// many to collect.
func (d *pointDeletes) commit(lo, hi []byte) {
	if d.n > maxPointDeletes {
		must(d.b.DeleteRange(lo, hi, nil))
		return
	}
	for _, k := range d.keys {
		must(d.b.Delete(k, nil))
	}
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

// finishCompaction ends a physical compaction: etcd's total duration and
// time of the last compaction are recorded.
func (s *Store) finishCompaction() {
	s.compacting = false
	if !s.compactStart.IsZero() {
		dbCompactionTotalMs.Observe(float64(time.Since(s.compactStart).Milliseconds()))
		dbCompactionLast.Set(float64(time.Now().Unix()))
		s.compactStart = time.Time{}
	}
}

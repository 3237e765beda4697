package storeactor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
)

// The count index ('i' space) answers "how many live keys in [a, b)" in a
// few hundred steps however many keys the range holds, without walking
// the range's 'l' entries; readers need nothing in memory (the Store
// mirrors the separators to write it: countwrite.go). See
// docs/architecture.md, "Counting without walking".
//
// It is a skip list of counted buckets over the live keys (those whose
// 'l' entry is not a tombstone), persisted in pebble:
//
//	'i' L enc(key)        -> (empty) key separates level L
//	'i' 0x80|L enc(key)   -> uvarint: live keys in [key, the next level-L separator)
//
// for L in 1..countLevels. A live key separates every level up to its
// own, countLevel(key), which a hash of the key fixes: 1 key in 64 is one
// of level >= 1, 1 in 64^2 of level >= 2, 1 in 64^3 of level 3. So the
// index is a function of the set of live keys alone — the same whatever sequence of
// writes led there, on every member, after a restart or a rebuild — and
// its buckets adapt to how keys are spread (Kubernetes' long shared
// prefixes included).
//
// Separators and counts are apart because they are read differently: the
// separators are iterated, and change only when a separator key is
// created or deleted; the counts change with every key created or deleted
// in their bucket — the top levels' with nearly every such write — and are
// only ever sought, one by one. pebble keeps every version of a key in
// its memtable until a flush and an iterator steps over each one, so a
// hot count among the iterated entries would make every read and every
// seek of the apply path step over thousands of versions.
//
// Invariants:
//   - for every L in 1..countLevels, the level-L separators are exactly
//     the live keys k with countLevel(k) >= L, and each has a count: the
//     number of live keys in [k, next level-L separator), or [k, end of
//     the key space) for the last; keys before the first separator of a
//     level are counted by the levels below it only.
//   - the index changes in the batch that changes the liveness of a key
//     (writeTxn.put of a key without a live version, writeTxn.deleteRange,
//     nothing else: compaction only removes versions no live key has), so
//     a crash or a torn batch leaves data and index together. metaCounts
//     records the index's format; a store without it (written before the
//     index, or by a tool that writes only the data) is indexed when the
//     Store starts (loadCountIndex), in one batch.
const (
	// countFanoutBits: a level holds 1 in 2^countFanoutBits of the keys of
	// the level below.
	countFanoutBits = 6
	countLevels     = 3
	countOfLevel    = 0x80 // level | countOfLevel: the counts of level's separators
	// countFormat is recorded in metaCounts; another value (another
	// hash, fan-out or number of levels) makes the Store rebuild the
	// index when it starts.
	countFormat = 1
)

var (
	metaCounts      = []byte("mcounts") // countFormat of the 'i' entries (absent: no index yet)
	countSpaceLow   = []byte{prefixCount}
	countSpaceUpper = []byte{prefixCount + 1}
)

// countLevel is the highest level key separates: the number of trailing
// zero bits of its hash, in steps of countFanoutBits, at most countLevels.
// The hash is fixed (FNV-1a and a finalizer that spreads its low bits):
// every member and version must agree, as snapshots carry the index.
func countLevel(key []byte) int {
	h := uint64(14695981039346656037)
	for _, c := range key {
		h ^= uint64(c)
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return min(bits.TrailingZeros64(h)/countFanoutBits, countLevels)
}

// sepKey is 'i' L enc, enc an encoded user key (appendEncodedKey): enc
// separates level L. sepKey(dst, L, nil) is the level's prefix.
func sepKey(dst []byte, level int, enc []byte) []byte {
	dst = append(dst, prefixCount, byte(level))
	return append(dst, enc...)
}

// countKey is 'i' 0x80|L enc: the count of separator enc of level L.
func countKey(dst []byte, level int, enc []byte) []byte {
	dst = append(dst, prefixCount, byte(level|countOfLevel))
	return append(dst, enc...)
}

// levelBounds are the bounds of level L's separators ('l' entries for 0).
func levelBounds(level int) (lo, hi []byte) {
	if level == 0 {
		return []byte{prefixLatest}, latestSpaceUpper
	}
	return sepKey(nil, level, nil), sepKey(nil, level+1, nil)
}

func decodeCount(v []byte) (int64, error) {
	n, k := binary.Uvarint(v)
	if k <= 0 || k != len(v) {
		return 0, errCorruptRecord
	}
	return int64(n), nil
}

// liveEntry reports whether an 'l' value holds a live version.
func liveEntry(v []byte) (bool, error) {
	if len(v) < 9 {
		return false, errCorruptRecord
	}
	return v[8]&flagTombstone == 0, nil
}

// countIndexBuilder emits the count index of a key space walked in key
// order: the separators open at each level with what they count so far.
type countIndexBuilder struct {
	open  [countLevels + 1][]byte // by level: the open separator's encoded key, nil before the first
	count [countLevels + 1]int64
	emit  func(level int, enc []byte, n int64) error
}

// live adds the next live key (encoded) in key order.
func (c *countIndexBuilder) live(enc []byte, key []byte) error {
	top := countLevel(key)
	for level := 1; level <= top; level++ {
		if err := c.flush(level); err != nil {
			return err
		}
		c.open[level] = append(c.open[level][:0], enc...)
	}
	for level := 1; level <= countLevels; level++ {
		if c.open[level] != nil {
			c.count[level]++
		}
	}
	return nil
}

func (c *countIndexBuilder) flush(level int) error {
	if c.open[level] == nil {
		return nil
	}
	err := c.emit(level, c.open[level], c.count[level])
	c.count[level] = 0
	return err
}

// finish emits the last separator of every level.
func (c *countIndexBuilder) finish() error {
	for level := 1; level <= countLevels; level++ {
		if err := c.flush(level); err != nil {
			return err
		}
	}
	return nil
}

// walkLive calls fn with the encoded key and user key of every live 'l'
// entry of r, in key order.
func walkLive(r pebble.Reader, fn func(enc, key []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixLatest}, UpperBound: latestSpaceUpper})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		live, err := liveEntry(it.Value())
		if err != nil {
			return fmt.Errorf("newest version of %q: %w", decodeUserKey(it.Key()[1:]), err)
		}
		if !live {
			continue
		}
		if err := fn(it.Key()[1:], decodeUserKey(it.Key()[1:])); err != nil {
			return err
		}
	}
	return it.Error()
}

// buildCountIndex writes into b the count index of the live keys of r,
// over whatever 'i' entries r held, and the format mark.
func buildCountIndex(r pebble.Reader, b *pebble.Batch) (keys int64, err error) {
	if err := b.DeleteRange(countSpaceLow, countSpaceUpper, nil); err != nil {
		return 0, err
	}
	var kbuf, vbuf []byte
	bld := countIndexBuilder{emit: func(level int, enc []byte, n int64) error {
		if err := b.Set(sepKey(kbuf[:0], level, enc), nil, nil); err != nil {
			return err
		}
		vbuf = binary.AppendUvarint(vbuf[:0], uint64(n))
		return b.Set(countKey(kbuf[:0], level, enc), vbuf, nil)
	}}
	err = walkLive(r, func(enc, key []byte) error {
		keys++
		return bld.live(enc, key)
	})
	if err == nil {
		err = bld.finish()
	}
	if err != nil {
		return 0, err
	}
	return keys, putU64(b, metaCounts, countFormat)
}

// countIndexCurrent reports whether r holds a count index of this format.
func countIndexCurrent(r pebble.Reader) (bool, error) {
	v, ok, err := getValue(r, metaCounts)
	if err != nil || !ok {
		return false, err
	}
	return len(v) == 8 && binary.BigEndian.Uint64(v) == countFormat, nil
}

// checkCountIndex compares r's count index with the one its live keys
// give (the invariants above), entry by entry.
func checkCountIndex(r pebble.Reader) error {
	ok, err := countIndexCurrent(r)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("count index: missing or of another format")
	}
	// Per level, the separators (0) and their counts (1), in key order.
	var its [countLevels + 1][2]*pebble.Iterator
	var valid [countLevels + 1][2]bool
	for level := 1; level <= countLevels; level++ {
		for i, lo := range [][]byte{sepKey(nil, level, nil), countKey(nil, level, nil)} {
			it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
			if err != nil {
				return err
			}
			defer it.Close()
			its[level][i], valid[level][i] = it, it.First()
		}
	}
	what := [2]string{"separator", "count"}
	stray := func(level, i int) error {
		return fmt.Errorf("count index: stray level-%d %s for %q", level, what[i], decodeUserKey(its[level][i].Key()[2:]))
	}
	bld := countIndexBuilder{emit: func(level int, enc []byte, n int64) error {
		for i, it := range its[level] {
			if valid[level][i] && bytes.Compare(it.Key()[2:], enc) < 0 {
				return stray(level, i)
			}
			if !valid[level][i] || !bytes.Equal(it.Key()[2:], enc) {
				return fmt.Errorf("count index: no level-%d %s for %q (%d keys)", level, what[i], decodeUserKey(enc), n)
			}
		}
		if v := its[level][0].Value(); len(v) != 0 {
			return fmt.Errorf("count index: level-%d separator %q has a value", level, decodeUserKey(enc))
		}
		got, err := decodeCount(its[level][1].Value())
		if err != nil {
			return fmt.Errorf("count index: level-%d count of %q: %w", level, decodeUserKey(enc), err)
		}
		if got != n {
			return fmt.Errorf("count index: level-%d separator %q counts %d keys, %d are live", level, decodeUserKey(enc), got, n)
		}
		for i, it := range its[level] {
			valid[level][i] = it.Next()
		}
		return nil
	}}
	if err := walkLive(r, bld.live); err != nil {
		return err
	}
	if err := bld.finish(); err != nil {
		return err
	}
	for level := 1; level <= countLevels; level++ {
		for i, it := range its[level] {
			if valid[level][i] {
				return stray(level, i)
			}
			if err := it.Error(); err != nil {
				return err
			}
		}
	}
	// Nothing else under 'i': levels are 1..countLevels.
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: countSpaceLow, UpperBound: countSpaceUpper})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if k := it.Key(); len(k) < 2 || k[1]&^countOfLevel < 1 || k[1]&^countOfLevel > countLevels {
			return fmt.Errorf("count index: stray entry %q", it.Key())
		}
	}
	return it.Error()
}

// capCountMirror drops the mirror's level 1 once it takes more than its
// cap (between batches: a countWriter holds level 1's changed counts until
// it flushes them), and publishes its size.
func (s *Store) capCountMirror() {
	if s.counts.overCap() {
		s.counts.dropLevel1()
		s.cfg.Logger.Warn("count index level 1 is read from pebble from now on: its mirror outgrew its memory; creating and deleting keys costs a seek more",
			zap.Int("count-mirror-max-bytes", s.counts.maxL1Bytes))
	}
	countMirrorBytes.Set(float64(s.counts.bytes()))
}

// loadCountIndex returns the mirror of the count index, which it builds
// first when the store has none of the current format (a store written
// before it, by an older version, or by a tool that writes only the
// data): one walk of the 'l' entries and one batch, before anything is
// applied or published.
func (s *Store) loadCountIndex(maxL1Bytes int) *countMirror {
	if !mustRead(countIndexCurrent(s.cfg.DB)) {
		start := time.Now()
		b := s.cfg.DB.NewBatch()
		keys := mustRead(buildCountIndex(s.cfg.DB, b))
		must(b.Commit(pebble.NoSync))
		must(b.Close())
		s.cfg.Logger.Info("built the range count index", zap.Int64("live-keys", keys), zap.Duration("took", time.Since(start)))
	}
	return mustRead(loadCountMirror(s.cfg.DB, maxL1Bytes))
}

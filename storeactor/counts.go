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
// few hundred iterator steps however many keys the range holds, without
// walking the range's 'l' entries and without anything in memory (see
// docs/architecture.md, "Counting without walking").
//
// It is a skip list of counted buckets over the live keys (those whose
// 'l' entry is not a tombstone), persisted in pebble:
//
//	'i' L enc(key) -> uvarint: live keys in [key, the next level-L separator)
//
// for L in 1..countLevels. A live key is a separator of every level up to
// its own, countLevel(key), which a hash of the key fixes: 1 key in 32 is
// one of level >= 1, 1 in 32^2 of level >= 2, and so on. So the index is a
// function of the set of live keys alone — the same whatever sequence of
// writes led there, on every member, after a restart or a rebuild — and
// its buckets adapt to how keys are spread (Kubernetes' long shared
// prefixes included).
//
// Invariants:
//   - for every L in 1..countLevels, the level-L entries are exactly the
//     live keys k with countLevel(k) >= L, and each holds the number of
//     live keys in [k, next level-L entry), or [k, end of the key space)
//     for the last; keys before the first entry of a level are counted by
//     the levels below it only.
//   - the index changes in the batch that changes the liveness of a key
//     (writeTxn.put of a key without a live version, writeTxn.deleteRange,
//     nothing else: compaction only removes versions no live key has), so
//     a crash or a torn batch leaves data and index together. metaCounts
//     records the index's format; a store without it (written before the
//     index, or by a tool that writes only the data) is indexed when the
//     Store starts (ensureCountIndex), in one batch.
const (
	prefixCount = 'i'
	// countFanoutBits: a level holds 1 in 2^countFanoutBits of the keys of
	// the level below.
	countFanoutBits = 5
	countLevels     = 4
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

// countKey is 'i' L enc, enc an encoded user key (appendEncodedKey).
func countKey(dst []byte, level int, enc []byte) []byte {
	dst = append(dst, prefixCount, byte(level))
	return append(dst, enc...)
}

// levelBounds are the bounds of level L's entries ('l' entries for 0).
func levelBounds(level int) (lo, hi []byte) {
	if level == 0 {
		return []byte{prefixLatest}, latestSpaceUpper
	}
	return []byte{prefixCount, byte(level)}, []byte{prefixCount, byte(level + 1)}
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

// countWriter keeps the count index of one apply batch up to date: the
// writeTxn of every request of the batch calls added or removed for each
// key whose liveness it changes, after or before its 'l' write alike.
// Each call costs a seek per level in the batch (one iterator per level,
// refreshed to see the batch's writes), and, for the 1 key in 32 that
// separates a level, a walk of about 32 entries of the level below.
type countWriter struct {
	b    *pebble.Batch
	its  [countLevels + 1]*pebble.Iterator // by level; 0 walks 'l' entries
	enc  []byte
	kbuf []byte
	vbuf []byte
}

func newCountWriter(b *pebble.Batch) *countWriter { return &countWriter{b: b} }

// close releases the iterators; the batch may be committed after it.
func (w *countWriter) close() {
	for i, it := range w.its {
		if it != nil {
			must(it.Close())
			w.its[i] = nil
		}
	}
}

// iter returns level's iterator, seeing every write of the batch so far.
func (w *countWriter) iter(level int) *pebble.Iterator {
	lo, hi := levelBounds(level)
	opts := &pebble.IterOptions{LowerBound: lo, UpperBound: hi}
	if w.its[level] == nil {
		w.its[level] = mustRead(w.b.NewIter(opts))
	} else {
		w.its[level].SetOptions(opts) // refreshes the batch view
	}
	return w.its[level]
}

// added records that key (not live before) is live now.
func (w *countWriter) added(key []byte) { w.change(key, +1) }

// removed records that key (live before) is live no more.
func (w *countWriter) removed(key []byte) { w.change(key, -1) }

func (w *countWriter) change(key []byte, d int64) {
	w.enc = appendEncodedKey(w.enc[:0], key)
	top := countLevel(key)
	for level := 1; level <= countLevels; level++ {
		it := w.iter(level)
		w.kbuf = countKey(w.kbuf[:0], level, w.enc)
		if level > top {
			// Not a separator here: the bucket holding key grows or shrinks.
			if it.SeekLT(w.kbuf) {
				w.set(it.Key(), mustRead(decodeCount(it.Value()))+d)
			}
			must(it.Error())
			continue
		}
		// A separator here: key's bucket is split off the one holding it,
		// or merged back into it.
		var own int64
		if d > 0 {
			own = w.liveFrom(level, w.enc) // before the seek below: it moves it
		} else {
			v, closer, err := w.b.Get(w.kbuf)
			must(err)
			own = mustRead(decodeCount(v))
			must(closer.Close())
			must(w.b.Delete(w.kbuf, nil))
		}
		if it = w.iter(level); it.SeekLT(w.kbuf) {
			// The previous bucket gives key's part away (own includes key
			// itself, which the previous bucket did not count) or takes it
			// back (own includes key, which is no longer live).
			w.set(it.Key(), mustRead(decodeCount(it.Value()))-d*(own-1))
		}
		must(it.Error())
		if d > 0 {
			w.vbuf = binary.AppendUvarint(w.vbuf[:0], uint64(own))
			must(w.b.Set(w.kbuf, w.vbuf, nil))
		}
	}
}

// liveFrom counts the live keys in [enc, next level-L separator after
// enc), enc itself counted as live: from level L-1's buckets (where enc is
// a separator already: levels are updated bottom up), or from the 'l'
// entries for level 1.
func (w *countWriter) liveFrom(level int, enc []byte) int64 {
	next := w.iter(level)
	var upper []byte
	if next.SeekGE(countKey(nil, level, enc)) {
		// A level-L key starts with 'i' L: the rest is the separator.
		upper = append([]byte(nil), next.Key()[2:]...)
	}
	must(next.Error())
	below := w.iter(level - 1)
	lo, _ := levelBounds(level - 1)
	n := int64(0)
	if level == 1 {
		n = 1 // enc itself; its 'l' entry may not be written yet
	}
	for ok := below.SeekGE(append(append([]byte(nil), lo...), enc...)); ok; ok = below.Next() {
		cur := below.Key()[len(lo):]
		if upper != nil && bytes.Compare(cur, upper) >= 0 {
			break
		}
		if level == 1 {
			if bytes.Equal(cur, enc) {
				continue
			}
			if mustRead(liveEntry(below.Value())) {
				n++
			}
			continue
		}
		n += mustRead(decodeCount(below.Value()))
	}
	must(below.Error())
	return n
}

func (w *countWriter) set(k []byte, n int64) {
	w.vbuf = binary.AppendUvarint(w.vbuf[:0], uint64(n))
	must(w.b.Set(k, w.vbuf, nil))
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
		kbuf = countKey(kbuf[:0], level, enc)
		vbuf = binary.AppendUvarint(vbuf[:0], uint64(n))
		return b.Set(kbuf, vbuf, nil)
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
	var its [countLevels + 1]*pebble.Iterator
	var valid [countLevels + 1]bool
	for level := 1; level <= countLevels; level++ {
		lo, hi := levelBounds(level)
		if its[level], err = r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi}); err != nil {
			return err
		}
		defer its[level].Close()
		valid[level] = its[level].First()
	}
	stray := func(level int) error {
		return fmt.Errorf("count index: stray level-%d entry for %q", level, decodeUserKey(its[level].Key()[2:]))
	}
	bld := countIndexBuilder{emit: func(level int, enc []byte, n int64) error {
		it := its[level]
		if valid[level] && bytes.Compare(it.Key()[2:], enc) < 0 {
			return stray(level)
		}
		if !valid[level] || !bytes.Equal(it.Key()[2:], enc) {
			return fmt.Errorf("count index: no level-%d entry for %q (%d keys)", level, decodeUserKey(enc), n)
		}
		got, err := decodeCount(it.Value())
		if err != nil {
			return fmt.Errorf("count index: level-%d entry for %q: %w", level, decodeUserKey(enc), err)
		}
		if got != n {
			return fmt.Errorf("count index: level-%d entry for %q counts %d keys, %d are live", level, decodeUserKey(enc), got, n)
		}
		valid[level] = it.Next()
		return nil
	}}
	if err := walkLive(r, bld.live); err != nil {
		return err
	}
	if err := bld.finish(); err != nil {
		return err
	}
	for level := 1; level <= countLevels; level++ {
		if valid[level] {
			return stray(level)
		}
		if err := its[level].Error(); err != nil {
			return err
		}
	}
	return nil
}

// ensureCountIndex builds the count index when the store has none of the
// current format (a store written before it, by an older version, or by a
// tool that writes only the data): one walk of the 'l' entries and one
// batch, before anything is applied or published.
func (s *Store) ensureCountIndex() {
	if mustRead(countIndexCurrent(s.cfg.DB)) {
		return
	}
	start := time.Now()
	b := s.cfg.DB.NewBatch()
	defer b.Close()
	keys := mustRead(buildCountIndex(s.cfg.DB, b))
	must(b.Commit(pebble.NoSync))
	s.cfg.Logger.Info("built the range count index", zap.Int64("live-keys", keys), zap.Duration("took", time.Since(start)))
}

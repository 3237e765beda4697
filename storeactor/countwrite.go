package storeactor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/RaduBerinde/btreemap"
	"github.com/cockroachdb/pebble/v2"
)

// countMirror is the Store's copy of the count index's separators and
// counts (levels 1..countLevels), so that the apply path updates the
// index with blind writes: finding the bucket of a key and its count in
// pebble took a seek through the memtable per level and per key created
// or deleted, more than all the rest of such a put.
//
// It holds 1 key in 63 (the separators of every level), not every key:
// about two bytes a key (BenchmarkCountMirrorMemory), next to the key
// filter's 1.25 and the ~100 of etcd's in-memory index. That still grows
// with the keyspace, so level 1 — all but 1/64 of it — is capped
// (MemorySizes.CountMirror): past the cap the mirror drops it and the
// countWriter reads level 1's separators and counts from pebble (a seek
// and a get per key created or deleted, cached for the batch), as it did
// before the mirror. Levels 2 and up hold 1 key in 4096 and stay.
//
// Invariants (as latestCache's): it belongs to one Store instance, loaded
// from pebble when the Store starts (after a restart or a snapshot
// install); countWriter changes it only together with the apply batch's
// 'i' entries, so it equals the committed index plus the batch being
// built. A batch that is not committed panics the actor, which drops the
// mirror with the instance. Level 1, once dropped, stays dropped for the
// instance (a restart loads it again if it fits).
type countMirror struct {
	// levels holds each level's separators (encoded) and counts; 0 is
	// unused, and levels[1] is nil once level 1 outgrew maxL1Bytes.
	levels     [countLevels + 1]*btreemap.BTreeMap[string, *sepCount]
	l1Bytes    int // estimated heap of levels[1] (sepEntryBytes)
	maxL1Bytes int
}

// sepEntryBytes estimates the heap of a mirrored separator: its bytes plus
// the tree's slot, the string header and the sepCount (measured with
// BenchmarkCountMirrorMemory: 2.1 bytes a key for 73-byte encoded keys,
// about 134 a separator).
func sepEntryBytes(enc string) int { return len(enc) + 64 }

// sepCount is a separator's count as the batch being built leaves it.
type sepCount struct {
	n     int64
	dirty bool // changed since the countWriter last wrote it
	gone  bool // no longer a separator (deleted from the batch's index)
}

// newCountMirror is an empty mirror whose level 1 may take maxL1Bytes
// (none: not mirrored at all).
func newCountMirror(maxL1Bytes int) *countMirror {
	m := &countMirror{maxL1Bytes: maxL1Bytes}
	for level := 1; level <= countLevels; level++ {
		m.levels[level] = btreemap.New[string, *sepCount](32, strings.Compare)
	}
	if maxL1Bytes <= 0 {
		m.dropLevel1()
	}
	return m
}

// loadCountMirror reads r's count index; level 1 only if it fits in
// maxL1Bytes.
func loadCountMirror(r pebble.Reader, maxL1Bytes int) (*countMirror, error) {
	m := newCountMirror(maxL1Bytes)
	for level := countLevels; level >= 1; level-- {
		lo := countKey(nil, level, nil)
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
		if err != nil {
			return nil, err
		}
		for ok := it.First(); ok && m.levels[level] != nil; ok = it.Next() {
			n, err := decodeCount(it.Value())
			if err != nil {
				it.Close()
				return nil, fmt.Errorf("count index: level-%d count of %q: %w", level, decodeUserKey(it.Key()[2:]), err)
			}
			m.insert(level, string(it.Key()[2:]), &sepCount{n: n})
			if m.overCap() {
				m.dropLevel1()
			}
		}
		if err := it.Close(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// insert adds or replaces a mirrored separator.
func (m *countMirror) insert(level int, enc string, c *sepCount) {
	if _, _, replaced := m.levels[level].ReplaceOrInsert(enc, c); !replaced && level == 1 {
		m.l1Bytes += sepEntryBytes(enc)
	}
}

// remove deletes a mirrored separator and returns its count.
func (m *countMirror) remove(level int, enc string) (*sepCount, bool) {
	_, c, ok := m.levels[level].Delete(enc)
	if ok && level == 1 {
		m.l1Bytes -= sepEntryBytes(enc)
	}
	return c, ok
}

// overCap reports whether level 1 is mirrored and takes more than its cap.
func (m *countMirror) overCap() bool { return m.levels[1] != nil && m.l1Bytes > m.maxL1Bytes }

// dropLevel1 stops mirroring level 1; only between batches (a countWriter
// holds level 1's changed counts until it flushes them).
func (m *countMirror) dropLevel1() {
	m.levels[1] = nil
	m.l1Bytes = 0
}

// bytes is the estimated heap of level 1's mirror (0 once dropped).
func (m *countMirror) bytes() int { return m.l1Bytes }

// before returns the last level-L separator before enc, and its count.
func (m *countMirror) before(level int, enc string) (sep string, c *sepCount) {
	for k, v := range m.levels[level].Descend(btreemap.LT(enc), btreemap.Min[string]()) {
		return k, v
	}
	return "", nil
}

// after returns the first level-L separator after enc.
func (m *countMirror) after(level int, enc string) (sep string, ok bool) {
	for k := range m.levels[level].Ascend(btreemap.GT(enc), btreemap.Max[string]()) {
		return k, true
	}
	return "", false
}

// countWriter keeps the count index up to date in one apply batch: the
// writeTxn of every request of the batch calls added or removed for each
// key whose liveness it changes, after or before its 'l' write alike.
// Each call costs, per level, a lookup in the mirror and a count written;
// for the 1 key in 64 that separates level 1, also a walk of about 64 'l'
// entries in the batch. With level 1 no longer mirrored, its lookups are
// a seek among its separators in the batch (which sees the batch's own
// writes) and a get of the count, kept in l1 for the rest of the batch.
//
// Counts are written once per batch (flush): the top levels' few counts
// change with nearly every key created or deleted, and one write each per
// batch instead of one per change keeps them from filling the memtable.
// A read of the batch that counts (a txn's range) flushes first.
type countWriter struct {
	b     *pebble.Batch
	m     *countMirror
	dirty []dirtyCount     // counts changed since the last flush
	it    *pebble.Iterator // over 'l' entries, for level-1 splits
	// Level 1 read from pebble (m.levels[1] nil): the separators' counts
	// this batch read or changed (gone ones removed), and an iterator
	// over level 1's separators. l1 is keyed by separator alone: level 1
	// is the only level ever left unmirrored (dropLevel1).
	l1    map[string]*sepCount
	sepIt *pebble.Iterator
	enc   []byte
	kbuf  []byte
	vbuf  []byte
}

type dirtyCount struct {
	level int
	sep   string
	c     *sepCount
}

func newCountWriter(b *pebble.Batch, m *countMirror) *countWriter {
	return &countWriter{b: b, m: m}
}

func (w *countWriter) touch(level int, sep string, c *sepCount) {
	if !c.dirty {
		c.dirty = true
		w.dirty = append(w.dirty, dirtyCount{level, sep, c})
	}
}

// flush writes the counts changed since the last flush into the batch.
func (w *countWriter) flush() {
	for _, d := range w.dirty {
		d.c.dirty = false
		if d.c.gone {
			continue // deleted with its separator
		}
		w.kbuf = append(append(w.kbuf[:0], prefixCount, byte(d.level|countOfLevel)), d.sep...)
		w.vbuf = binary.AppendUvarint(w.vbuf[:0], uint64(d.c.n))
		must(w.b.Set(w.kbuf, w.vbuf, nil))
	}
	w.dirty = w.dirty[:0]
}

// close flushes and releases the iterators: the batch may be committed
// after it.
func (w *countWriter) close() {
	w.flush()
	w.release()
}

// release closes the iterators, if open (they read the DB's state); the
// apply path defers it, for a batch a panic abandons.
func (w *countWriter) release() {
	for _, it := range []**pebble.Iterator{&w.it, &w.sepIt} {
		if *it != nil {
			(*it).Close()
			*it = nil
		}
	}
}

// added records that key (not live before) is live now.
func (w *countWriter) added(key []byte) { w.change(key, +1) }

// removed records that key (live before) is live no more.
func (w *countWriter) removed(key []byte) { w.change(key, -1) }

func (w *countWriter) change(key []byte, d int64) {
	w.enc = appendEncodedKey(w.enc[:0], key)
	enc := string(w.enc)
	top := countLevel(key)
	for level := 1; level <= countLevels; level++ {
		if level > top {
			// Not a separator here: the bucket holding key grows or shrinks.
			w.addToPrevious(level, enc, d)
			continue
		}
		// A separator here: key's bucket is split off the one holding it
		// (own counts key itself, which that bucket did not), or merged
		// back into it (own counts key, live no more).
		var own int64
		if d > 0 {
			own = w.liveFrom(level, enc)
			c := &sepCount{n: own}
			w.insert(level, enc, c)
			w.touch(level, enc, c)
			must(w.b.Set(sepKey(w.kbuf[:0], level, w.enc), nil, nil))
		} else {
			c := w.remove(level, enc)
			if c == nil {
				panic(fmt.Errorf("count index: deleted key %q separates level %d but has no count", key, level))
			}
			own, c.gone = c.n, true
			must(w.b.Delete(sepKey(w.kbuf[:0], level, w.enc), nil))
			must(w.b.Delete(countKey(w.kbuf[:0], level, w.enc), nil))
		}
		w.addToPrevious(level, enc, -d*(own-1))
	}
}

// addToPrevious adds d to the count of the last level-L separator before
// enc, if there is one.
func (w *countWriter) addToPrevious(level int, enc string, d int64) {
	if prev, c := w.before(level, enc); c != nil {
		c.n += d
		w.touch(level, prev, c)
	}
}

// liveFrom counts the live keys from enc (counted as live) to the next
// level-L separator after it: from level L-1's buckets (where enc is a
// separator already: levels are updated bottom up), or from the batch's
// 'l' entries for level 1.
func (w *countWriter) liveFrom(level int, enc string) int64 {
	next, bounded := w.after(level, enc)
	if level > 1 {
		return w.sumCounts(level-1, enc, next, bounded)
	}
	// Bounds: after enc's own 'l' entry (enc itself counts as live, its
	// entry may not be written yet), before next's.
	opts := &pebble.IterOptions{
		LowerBound: append(append([]byte{prefixLatest}, enc...), 0),
		UpperBound: latestSpaceUpper,
	}
	if bounded {
		opts.UpperBound = append([]byte{prefixLatest}, next...)
	}
	if w.it == nil {
		w.it = mustRead(w.b.NewIter(opts))
	} else {
		w.it.SetOptions(opts) // also refreshes the batch view
	}
	n := int64(1)
	for ok := w.it.First(); ok; ok = w.it.Next() {
		if mustRead(liveEntry(w.it.Value())) {
			n++
		}
	}
	must(w.it.Error())
	return n
}

// The separators of a level, from the mirror or, for a level it no longer
// holds (level 1 past its cap), from the batch.

func (w *countWriter) before(level int, enc string) (string, *sepCount) {
	if w.m.levels[level] != nil {
		return w.m.before(level, enc)
	}
	it := w.separators(level)
	if !it.SeekLT(sepKey(w.kbuf[:0], level, []byte(enc))) {
		must(it.Error())
		return "", nil
	}
	sep := string(it.Key()[2:])
	return sep, w.mustCountOf(level, sep)
}

func (w *countWriter) after(level int, enc string) (string, bool) {
	if w.m.levels[level] != nil {
		return w.m.after(level, enc)
	}
	it := w.separators(level)
	if !it.SeekGE(append(sepKey(w.kbuf[:0], level, []byte(enc)), 0)) {
		must(it.Error())
		return "", false
	}
	return string(it.Key()[2:]), true
}

func (w *countWriter) insert(level int, enc string, c *sepCount) {
	if w.m.levels[level] != nil {
		w.m.insert(level, enc, c)
		return
	}
	if w.l1 == nil {
		w.l1 = make(map[string]*sepCount)
	}
	w.l1[enc] = c
}

// remove returns the count of separator enc, which stops being one; nil if
// it has none.
func (w *countWriter) remove(level int, enc string) *sepCount {
	if w.m.levels[level] != nil {
		c, _ := w.m.remove(level, enc)
		return c
	}
	c := w.countOf(level, enc)
	delete(w.l1, enc)
	return c
}

// sumCounts adds up the counts of the level-L separators in [from, next),
// or from on when not bounded.
func (w *countWriter) sumCounts(level int, from, next string, bounded bool) int64 {
	var n int64
	if w.m.levels[level] != nil {
		stop := btreemap.Max[string]()
		if bounded {
			stop = btreemap.LT(next)
		}
		for _, c := range w.m.levels[level].Ascend(btreemap.GE(from), stop) {
			n += c.n
		}
		return n
	}
	it := w.separators(level)
	var stop []byte
	if bounded {
		stop = sepKey(nil, level, []byte(next))
	}
	for ok := it.SeekGE(sepKey(w.kbuf[:0], level, []byte(from))); ok; ok = it.Next() {
		if stop != nil && bytes.Compare(it.Key(), stop) >= 0 {
			break
		}
		n += w.mustCountOf(level, string(it.Key()[2:])).n
	}
	must(it.Error())
	return n
}

// countOf is separator sep's count as the batch leaves it so far: from l1,
// or read from the batch (its counts there are current for every
// separator l1 does not hold). Nil if sep has no count.
func (w *countWriter) countOf(level int, sep string) *sepCount {
	if c, ok := w.l1[sep]; ok {
		return c
	}
	v, closer, err := w.b.Get(countKey(w.kbuf[:0], level, []byte(sep)))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	must(err)
	n, err := decodeCount(v)
	closer.Close()
	if err != nil {
		panic(fmt.Errorf("count index: level-%d count of %q: %w", level, decodeUserKey([]byte(sep)), err))
	}
	c := &sepCount{n: n}
	if w.l1 == nil {
		w.l1 = make(map[string]*sepCount)
	}
	w.l1[sep] = c
	return c
}

// mustCountOf is the count of a separator the batch holds: one without
// a count is a corrupt index.
func (w *countWriter) mustCountOf(level int, sep string) *sepCount {
	c := w.countOf(level, sep)
	if c == nil {
		panic(fmt.Errorf("count index: level-%d separator %q has no count", level, decodeUserKey([]byte(sep))))
	}
	return c
}

// separators is an iterator over the level's separators in the batch,
// refreshed to see the batch's writes so far.
func (w *countWriter) separators(level int) *pebble.Iterator {
	lo, hi := levelBounds(level)
	opts := &pebble.IterOptions{LowerBound: lo, UpperBound: hi}
	if w.sepIt == nil {
		w.sepIt = mustRead(w.b.NewIter(opts))
	} else {
		w.sepIt.SetOptions(opts) // also refreshes the batch view
	}
	return w.sepIt
}

// equal reports whether the mirror holds exactly r's count index, in the
// levels it mirrors (tests).
func (m *countMirror) equal(r pebble.Reader) error {
	loaded, err := loadCountMirror(r, math.MaxInt)
	if err != nil {
		return err
	}
	for level := 1; level <= countLevels; level++ {
		if m.levels[level] == nil {
			continue
		}
		var got, want bytes.Buffer
		for k, v := range m.levels[level].Ascend(btreemap.Min[string](), btreemap.Max[string]()) {
			fmt.Fprintf(&got, "%q=%d ", k, v.n)
		}
		for k, v := range loaded.levels[level].Ascend(btreemap.Min[string](), btreemap.Max[string]()) {
			fmt.Fprintf(&want, "%q=%d ", k, v.n)
		}
		if got.String() != want.String() {
			return fmt.Errorf("count mirror level %d: %s, pebble holds %s", level, got.String(), want.String())
		}
	}
	return nil
}

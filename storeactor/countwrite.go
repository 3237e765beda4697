package storeactor

import (
	"bytes"
	"encoding/binary"
	"fmt"
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
// a few bytes a key at most (BenchmarkCountMirrorMemory), next to the key
// filter's 1.25 and the ~100 of etcd's in-memory index.
//
// Invariants (as latestCache's): it belongs to one Store instance, loaded
// from pebble when the Store starts (after a restart or a snapshot
// install); countWriter changes it only together with the apply batch's
// 'i' entries, so it equals the committed index plus the batch being
// built. A batch that is not committed panics the actor, which drops the
// mirror with the instance.
type countMirror struct {
	levels [countLevels + 1]*btreemap.BTreeMap[string, *sepCount] // by level, encoded separator; 0 unused
}

// sepCount is a separator's count as the batch being built leaves it.
type sepCount struct {
	n     int64
	dirty bool // changed since the countWriter last wrote it
	gone  bool // no longer a separator (deleted from the batch's index)
}

func newCountMirror() *countMirror {
	m := &countMirror{}
	for level := 1; level <= countLevels; level++ {
		m.levels[level] = btreemap.New[string, *sepCount](32, strings.Compare)
	}
	return m
}

// loadCountMirror reads r's count index.
func loadCountMirror(r pebble.Reader) (*countMirror, error) {
	m := newCountMirror()
	for level := 1; level <= countLevels; level++ {
		lo := countKey(nil, level, nil)
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
		if err != nil {
			return nil, err
		}
		for ok := it.First(); ok; ok = it.Next() {
			n, err := decodeCount(it.Value())
			if err != nil {
				it.Close()
				return nil, fmt.Errorf("count index: level-%d count of %q: %w", level, decodeUserKey(it.Key()[2:]), err)
			}
			m.levels[level].ReplaceOrInsert(string(it.Key()[2:]), &sepCount{n: n})
		}
		if err := it.Close(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

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
// entries in the batch.
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

// close flushes and releases the iterator: the batch may be committed
// after it.
func (w *countWriter) close() {
	w.flush()
	w.release()
}

// release closes the iterator, if open (it reads the DB's state); the
// apply path defers it, for a batch a panic abandons.
func (w *countWriter) release() {
	if w.it != nil {
		w.it.Close()
		w.it = nil
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
			w.m.levels[level].ReplaceOrInsert(enc, c)
			w.touch(level, enc, c)
			must(w.b.Set(sepKey(w.kbuf[:0], level, w.enc), nil, nil))
		} else {
			_, c, ok := w.m.levels[level].Delete(enc)
			if !ok {
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
	if prev, c := w.m.before(level, enc); c != nil {
		c.n += d
		w.touch(level, prev, c)
	}
}

// liveFrom counts the live keys from enc (counted as live) to the next
// level-L separator after it: from level L-1's buckets (where enc is a
// separator already: levels are updated bottom up), or from the batch's
// 'l' entries for level 1.
func (w *countWriter) liveFrom(level int, enc string) int64 {
	next, bounded := w.m.after(level, enc)
	if level > 1 {
		stop := btreemap.Max[string]()
		if bounded {
			stop = btreemap.LT(next)
		}
		var n int64
		for _, c := range w.m.levels[level-1].Ascend(btreemap.GE(enc), stop) {
			n += c.n
		}
		return n
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

// equal reports whether the mirror holds exactly r's count index (tests).
func (m *countMirror) equal(r pebble.Reader) error {
	loaded, err := loadCountMirror(r)
	if err != nil {
		return err
	}
	for level := 1; level <= countLevels; level++ {
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

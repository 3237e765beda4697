package storeactor

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastore/metastore/metrics"
)

// How a range's total count was found (metastore_store_range_counts_total).
var (
	rangeCounts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "metastore_store_range_counts_total",
		Help: "Range counts (count_only, or the total of a range cut by its limit) by how they were found: " +
			"index (the count index at its revision), history (the index corrected by the changes since the revision read), " +
			"walk (every key of the range: more changes since the revision read than half its keys, or no index yet).",
	}, []string{"how"})
	countsByIndex, countsByHistory, countsByWalk = rangeCounts.WithLabelValues("index"),
		rangeCounts.WithLabelValues("history"), rangeCounts.WithLabelValues("walk")
)

func init() { metrics.MustRegister(rangeCounts) }

// countAt returns how many keys of [key, end) (end empty: every key from
// key on) are live at rev.
//
// r is the DB or the apply batch. The count index is read at the revision
// its view of the store holds: for the DB, one snapshot's (the revision
// recorded with it); for the batch, cur (the batch's own revision). When
// rev is older, the changes of (rev, that revision] in the history ('h')
// correct it: each key of the range they touch counts as live at rev if
// its first change after rev was a delete, or a put that did not create
// it (version > 1). Only when those changes outnumber half the range's
// keys is the range walked instead, at rev. A store without the index
// (a Reader serving before the Store started on an old store) walks too.
func countAt(r pebble.Reader, key, end []byte, rev, cur int64) (int64, error) {
	if len(end) > 0 && bytes.Compare(key, end) >= 0 {
		return 0, nil
	}
	if db, ok := r.(*pebble.DB); ok {
		snap := db.NewSnapshot()
		defer snap.Close()
		r = snap
		b, ok, err := getValue(snap, metaRev)
		if err != nil {
			return 0, err
		}
		if cur = 1; ok {
			cur = int64(binary.BigEndian.Uint64(b))
		}
	}
	if ok, err := countIndexCurrent(r); err != nil {
		return 0, err
	} else if !ok || rev > cur { // (rev > cur: never, the View trails the DB)
		return walkCount(r, key, end, rev)
	}
	lo := appendEncodedKey(nil, key)
	var hi []byte
	if len(end) > 0 {
		hi = appendEncodedKey(nil, end)
	}
	c := indexCounter{r: r}
	n, err := c.count(lo, hi, countLevels)
	c.close()
	switch {
	case err != nil:
		return 0, err
	case rev == cur:
		countsByIndex.Inc()
		return n, nil
	}
	d, ok, err := historyDelta(r, key, end, rev, cur, n/2+1024)
	switch {
	case err != nil:
		return 0, err
	case !ok:
		return walkCount(r, key, end, rev)
	}
	countsByHistory.Inc()
	return n - d, nil
}

// walkCount counts the keys of [key, end) live at rev by visiting each.
func walkCount(r pebble.Reader, key, end []byte, rev int64) (int64, error) {
	countsByWalk.Inc()
	var n int64
	err := visitAt(r, key, end, rev, func([]byte, int64, []byte) bool { n++; return true })
	return n, err
}

// historyDelta is how many more keys of [key, end) are live at cur than at
// rev, from the history of (rev, cur]; false when that history holds more
// than budget changes.
func historyDelta(r pebble.Reader, key, end []byte, rev, cur int64, budget int64) (int64, bool, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: historyKey(nil, rev+1, 0), UpperBound: historyKey(nil, cur+1, 0)})
	if err != nil {
		return 0, false, err
	}
	defer it.Close()
	type span struct {
		firstMain         int64 // the first change after rev
		firstDel, lastDel bool  // whether the first, and the last so far, was a delete
	}
	touched := map[string]*span{}
	var seen int64
	for ok := it.First(); ok; ok = it.Next() {
		if seen++; seen > budget {
			return 0, false, nil
		}
		flag, k, _, err := parseHistoryValue(it.Value())
		if err != nil {
			return 0, false, err
		}
		del := flag&flagTombstone != 0
		if bytes.Compare(k, key) < 0 || (len(end) > 0 && bytes.Compare(k, end) >= 0) {
			continue
		}
		if s, ok := touched[string(k)]; ok {
			s.lastDel = del
			continue
		}
		main, _ := parseHistoryKey(it.Key())
		touched[string(k)] = &span{firstMain: main, firstDel: del, lastDel: del}
	}
	if err := it.Error(); err != nil || len(touched) == 0 {
		return 0, err == nil, err
	}
	// Whether each key was live at rev: its versions' records, in key
	// order through one iterator (see valueReader).
	keys := make([]string, 0, len(touched))
	for k := range touched {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	versions, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixKey}, UpperBound: []byte{prefixKey + 1}})
	if err != nil {
		return 0, false, err
	}
	defer versions.Close()
	var d int64
	var vk []byte
	for _, k := range keys {
		s := touched[k]
		// A delete removes a live key only; a put of version 1 creates one.
		wasLive := s.firstDel
		if !s.firstDel {
			vk = versionKey(vk[:0], []byte(k), s.firstMain)
			if !versions.SeekGE(vk) || !bytes.Equal(versions.Key(), vk) {
				if err := versions.Error(); err != nil {
					return 0, false, err
				}
				return 0, false, errVersionGone // a compaction overtook the read
			}
			rec, err := decodeRecord(versions.Value())
			if err != nil {
				return 0, false, err
			}
			wasLive = rec.version > 1
		}
		switch {
		case wasLive && s.lastDel:
			d--
		case !wasLive && !s.lastDel:
			d++
		}
	}
	return d, true, nil
}

// indexCounter counts ranges from the count index (counts.go) of one
// consistent view r: per level, an iterator over its separators and one
// over their counts, created as needed. Counts are read by seeking, in
// increasing key order, an iterator that stays on its data block rather
// than by point lookups, each of which would look the block up again.
type indexCounter struct {
	r    pebble.Reader
	seps [countLevels + 1]*pebble.Iterator // 0: the 'l' entries
	cnts [countLevels + 1]*pebble.Iterator
	buf  [countLevels + 1][]byte
	kbuf []byte // the key of a count read
}

func (c *indexCounter) close() {
	for _, its := range [][countLevels + 1]*pebble.Iterator{c.seps, c.cnts} {
		for _, it := range its {
			if it != nil {
				it.Close()
			}
		}
	}
}

func (c *indexCounter) iter(its *[countLevels + 1]*pebble.Iterator, level int, lo, hi []byte) (*pebble.Iterator, error) {
	if its[level] == nil {
		it, err := c.r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return nil, err
		}
		its[level] = it
	}
	return its[level], nil
}

// count returns how many live keys have an encoded key in [lo, hi) (hi
// nil: no upper bound), knowing that no separator of a level above top
// lies in it. It works on the highest level that has separators in the
// range: their buckets inside the range are summed, and the parts before
// the first and after the last are counted one level down. As no higher
// separator splits the range, a level contributes about one bucket's
// worth of entries (64) on each side: the whole count costs a few
// hundred steps, whatever the range's size.
func (c *indexCounter) count(lo, hi []byte, top int) (int64, error) {
	for level := top; level >= 1; level-- {
		lvlo, lvhi := levelBounds(level)
		it, err := c.iter(&c.seps, level, lvlo, lvhi)
		if err != nil {
			return 0, err
		}
		if !it.SeekGE(sepKey(c.buf[level][:0], level, lo)) {
			if err := it.Error(); err != nil {
				return 0, err
			}
			continue
		}
		if hi != nil && bytes.Compare(it.Key()[2:], hi) >= 0 {
			continue
		}
		first := append(c.buf[level][:0], it.Key()[2:]...)
		c.buf[level] = first
		n, err := c.count(lo, first, level-1)
		if err != nil {
			return 0, err
		}
		for {
			sep := append(c.buf[level][:0], it.Key()[2:]...)
			c.buf[level] = sep
			if !it.Next() {
				if err := it.Error(); err != nil {
					return 0, err
				}
				if hi == nil {
					m, err := c.bucket(level, sep) // the last bucket runs to the end
					return n + m, err
				}
				rest, err := c.count(sep, hi, level-1)
				return n + rest, err
			}
			switch next := it.Key()[2:]; {
			case hi == nil || bytes.Compare(next, hi) < 0:
				m, err := c.bucket(level, sep)
				if err != nil {
					return 0, err
				}
				n += m
			case bytes.Equal(next, hi):
				m, err := c.bucket(level, sep)
				return n + m, err
			default:
				rest, err := c.count(sep, hi, level-1)
				return n + rest, err
			}
		}
	}
	return c.walk(lo, hi)
}

// bucket reads the count of separator enc of level.
func (c *indexCounter) bucket(level int, enc []byte) (int64, error) {
	it := c.cnts[level]
	if it == nil {
		lo := countKey(nil, level, nil)
		var err error
		if it, err = c.iter(&c.cnts, level, lo, prefixEnd(lo)); err != nil {
			return 0, err
		}
	}
	c.kbuf = countKey(c.kbuf[:0], level, enc)
	if !it.SeekGE(c.kbuf) || !bytes.Equal(it.Key(), c.kbuf) {
		if err := it.Error(); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("count index: level-%d separator %q has no count: %w", level, decodeUserKey(enc), errCorruptRecord)
	}
	return decodeCount(it.Value())
}

// walk counts the live 'l' entries in [lo, hi).
func (c *indexCounter) walk(lo, hi []byte) (int64, error) {
	llo, lhi := levelBounds(0)
	it, err := c.iter(&c.seps, 0, llo, lhi)
	if err != nil {
		return 0, err
	}
	seek := append(append(c.buf[0][:0], prefixLatest), lo...)
	c.buf[0] = seek
	var n int64
	for ok := it.SeekGE(seek); ok; ok = it.Next() {
		if hi != nil && bytes.Compare(it.Key()[1:], hi) >= 0 {
			break
		}
		live, err := liveEntry(it.Value())
		if err != nil {
			return 0, err
		}
		if live {
			n++
		}
	}
	return n, it.Error()
}

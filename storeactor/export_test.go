package storeactor

// Test-only window into the store's pebble key space, for the external
// tests in package storeactor_test: they drive the Store actor like the
// raft actor does and use these to check what physically sits in pebble.

import (
	"bytes"
	"encoding/binary"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
)

// StoredVersion is one version of a key as written under its 'k' key.
type StoredVersion struct {
	Main, Sub, Create, Version int64
	Tombstone                  bool
	Value                      string
}

// StoredVersions returns every version of key in pebble, newest first.
func StoredVersions(db *pebble.DB, key string) []StoredVersion {
	p := keyPrefix(nil, []byte(key))
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: afterKeyPrefix(nil, p)})
	if err != nil {
		panic(err)
	}
	defer it.Close()
	var out []StoredVersion
	for ok := it.First(); ok; ok = it.Next() {
		kp, main := splitVersionKey(it.Key())
		if !bytes.Equal(kp, p) {
			panic("storeactor: foreign key under a key prefix")
		}
		rec, err := decodeRecord(it.Value())
		if err != nil {
			panic(err)
		}
		out = append(out, StoredVersion{Main: main, Sub: rec.sub, Create: rec.create, Version: rec.version,
			Tombstone: rec.tombstone, Value: string(rec.value)})
	}
	return out
}

// StoredVersionCount is how many 'k' entries (versions of any key) pebble holds.
func StoredVersionCount(db *pebble.DB) int {
	return countRange(db, []byte{prefixKey}, []byte{prefixKey + 1})
}

// HistoryEntry is one 'h' entry: a change at main.sub to Key.
type HistoryEntry struct {
	Main, Sub int64
	Tombstone bool
	Key       string
}

// History returns the history entries in [fromMain, toMain].
func History(db *pebble.DB, fromMain, toMain int64) []HistoryEntry {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: historyKey(nil, fromMain, 0), UpperBound: historyKey(nil, toMain+1, 0)})
	if err != nil {
		panic(err)
	}
	defer it.Close()
	var out []HistoryEntry
	for ok := it.First(); ok; ok = it.Next() {
		main, sub := parseHistoryKey(it.Key())
		v := it.Value()
		out = append(out, HistoryEntry{Main: main, Sub: sub, Tombstone: v[0] == flagTombstone, Key: string(v[1:])})
	}
	return out
}

// CompactDone is the persisted physical-compaction progress mark, -1 if none.
func CompactDone(db *pebble.DB) int64 {
	b, ok, err := getValue(db, metaCompactDone)
	if err != nil {
		panic(err)
	}
	if !ok {
		return -1
	}
	return int64(binary.BigEndian.Uint64(b))
}

func countRange(db *pebble.DB, lo, hi []byte) int {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		panic(err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n
}

// LatestCount is how many 'l' entries (newest version per key) pebble holds.
func LatestCount(db *pebble.DB) int {
	return countRange(db, []byte{prefixLatest}, []byte{prefixLatest + 1})
}

// CorruptNewestVersion rewrites key's newest version entry in 'k' with
// another create revision (for the consistency check's test).
func CorruptNewestVersion(db *pebble.DB, key string) {
	l, closer, err := db.Get(latestKey(nil, []byte(key)))
	if err != nil {
		panic(err)
	}
	main := int64(binary.BigEndian.Uint64(l[:8]))
	closer.Close()
	vk := versionKey(nil, []byte(key), main)
	v, closer, err := db.Get(vk)
	if err != nil {
		panic(err)
	}
	rec, err := decodeRecord(v)
	if err != nil {
		panic(err)
	}
	rec.value = append([]byte(nil), rec.value...)
	closer.Close()
	rec.create++
	if err := db.Set(vk, rec.append(nil), pebble.Sync); err != nil {
		panic(err)
	}
}

// CacheEveryRead makes the read cache insert every eligible miss instead of
// a sample, so that tests exercise it on every read. Call it before the
// Reader is shared.
func (r *Reader) CacheEveryRead() { r.reads.admit = 0 }

// BreakRevision overwrites the store's revision record with one that cannot
// be decoded: a store loading this state panics.
func BreakRevision(db *pebble.DB) {
	if err := db.Set(metaRev, []byte{1}, pebble.Sync); err != nil {
		panic(err)
	}
}

// SetAfterIngest sets the hook run between a snapshot's ingest and the
// publishing of its View (nil: none).
func SetAfterIngest(f func()) { afterIngest = f }

// DropCountIndex deletes the count index and its format mark, as in a
// store written before the index.
func DropCountIndex(db *pebble.DB) {
	if err := db.DeleteRange(countSpaceLow, countSpaceUpper, pebble.Sync); err != nil {
		panic(err)
	}
	if err := db.Delete(metaCounts, pebble.Sync); err != nil {
		panic(err)
	}
}

// SeparatorKeys returns n keys prefix<number> that separate level (see
// countLevel): the count index's upper levels hold 1 key in 64^level, so
// tests with few keys choose theirs to reach every level.
func SeparatorKeys(prefix string, level, n int) []string {
	var out []string
	k := []byte(prefix)
	for i := 0; len(out) < n; i++ {
		k = strconv.AppendInt(k[:len(prefix)], int64(i), 10)
		if countLevel(k) == level {
			out = append(out, string(k))
		}
	}
	return out
}

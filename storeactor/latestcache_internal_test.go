package storeactor

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// TestLatestCacheMatchesPebble applies one random workload of puts (with
// and without leases), deletes and compactions twice: once with a cache so
// small that it rotates on every other write, once without one. Every
// version, 'l' entry and lease attachment written must be identical: the
// cache may only save lookups, never change what a put computes.
func TestLatestCacheMatchesPebble(t *testing.T) {
	cached, plain := mustOpen(t), mustOpen(t)
	cache := newLatestCache(1)
	rng := rand.New(rand.NewSource(1))
	rev := int64(1)
	key := func() []byte { return []byte(fmt.Sprintf("k%d", rng.Intn(8))) }
	for step := 0; step < 3000; step++ {
		op, k, lease := rng.Intn(10), key(), int64(rng.Intn(3))
		if op == 9 {
			// Compaction at the current revision, on the key only: it
			// drops the key's 'l' entry when that is a tombstone.
			for _, db := range []*pebble.DB{cached, plain} {
				b := db.NewBatch()
				compactKey(db, b, k, rev)
				must(b.Commit(pebble.NoSync))
			}
			continue
		}
		for _, db := range []*pebble.DB{cached, plain} {
			b := db.NewIndexedBatch()
			tw := &writeTxn{r: b, w: b, beginRev: rev}
			if db == cached {
				tw.cache = cache
			}
			switch {
			case op < 6:
				tw.put(k, []byte{byte(step)}, lease)
			case op < 8:
				tw.deleteRange(k, nil)
			default:
				tw.deleteRange([]byte("k3"), []byte("k6"))
			}
			must(b.Commit(pebble.NoSync))
			if db == plain && tw.changes > 0 {
				rev++
			}
		}
	}
	a, b := dumpSpace(t, cached), dumpSpace(t, plain)
	if !bytes.Equal(a, b) {
		t.Fatalf("the cached store wrote differently:\ncached: %q\nplain:  %q", a, b)
	}
}

func mustOpen(t *testing.T) *pebble.DB {
	db, err := OpenPebble("/db", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// dumpSpace is every key and value in db, in order.
func dumpSpace(t *testing.T, db *pebble.DB) []byte {
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []byte
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, it.Key()...)
		out = append(out, '=')
		out = append(out, it.Value()...)
		out = append(out, '\n')
	}
	return out
}

// BenchmarkPutApply is the store's apply cost of a put of 256 B: to one of
// 100k keys that all exist (the latest cache's case), and to new keys
// (keys=10M: the key filter's case), in batches of 100.
func BenchmarkPutApply(b *testing.B) {
	for _, tc := range []struct {
		name          string
		cache, filter bool
		keys          int
	}{
		{"cache=false", false, false, 100_000},
		{"cache=true", true, false, 100_000},
		{"new-keys/filter=false", true, false, 10_000_000},
		{"new-keys/filter=true", true, true, 10_000_000},
	} {
		b.Run(tc.name, func(b *testing.B) {
			db, err := OpenPebble("/db", true)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			var cache *latestCache
			if tc.cache {
				cache = newLatestCache(leanLatestHalf)
				if tc.filter {
					cache.keys = newKeyFilter(leanKeyFilter)
				}
			}
			rng := rand.New(rand.NewSource(1))
			val := make([]byte, 256)
			rev := int64(1)
			batch := func(n int) {
				bt := db.NewIndexedBatch()
				for i := 0; i < n; i++ {
					tw := &writeTxn{r: bt, w: bt, beginRev: rev, cache: cache}
					tw.put([]byte(fmt.Sprintf("%08d", rng.Intn(tc.keys))), val, 0)
					rev++
				}
				must(bt.Commit(pebble.NoSync))
				bt.Close()
			}
			for i := 0; i < 3000; i++ {
				batch(100)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i += 100 {
				batch(100)
			}
		})
	}
}

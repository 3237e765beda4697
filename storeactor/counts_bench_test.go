package storeactor

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// loadPods writes n keys /registry/pods/ns-<i%100>/pod-<i> (256 B values)
// and as many under /registry/events/, in batches of 1000 as the apply
// does (count index included), compacts them into sstables, and returns
// the revision.
func loadPods(b *testing.B, db *pebble.DB, n int) (int64, *countMirror) {
	rev := int64(1)
	val := make([]byte, 256)
	m := newCountMirror(math.MaxInt)
	for _, kind := range []string{"pods", "events"} {
		for i := 0; i < n; i += 1000 {
			bt := db.NewIndexedBatch()
			cw := newCountWriter(bt, m)
			for j := i; j < i+1000 && j < n; j++ {
				tw := &writeTxn{r: bt, w: bt, beginRev: rev, counts: cw}
				tw.put([]byte(fmt.Sprintf("/registry/%s/ns-%02d/pod-%06d", kind, j%100, j)), val, 0)
				rev++
			}
			cw.close()
			must(putU64(bt, metaRev, uint64(rev)))
			must(bt.Commit(pebble.NoSync))
			must(bt.Close())
		}
	}
	must(putU64(db, metaCounts, countFormat))
	// Settled: every table compacted, none being rewritten while timed.
	must(db.Compact(context.Background(), []byte{0}, []byte{0xff}, true))
	return rev, m
}

// BenchmarkRangeCount is Kubernetes' list of a 100k-key prefix (in a
// store of 200k keys): the first page (limit 500, with the prefix's
// count), a count-only range (its object count metric), and the first
// page at a revision 100 writes old (a continued list). "index" is the
// Reader's path; "walk" reads the same range by walking every key, as
// every count did before the index.
func BenchmarkRangeCount(b *testing.B) {
	db, err := OpenPebble("/db", true)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	cur, m := loadPods(b, db, 100_000)
	prefix := []byte("/registry/pods/")
	end := prefixEnd(prefix)
	page := &pb.RangeRequest{Key: prefix, RangeEnd: end, Limit: 500}
	count := &pb.RangeRequest{Key: prefix, RangeEnd: end, CountOnly: true}
	check := func(b *testing.B, resp *pb.RangeResponse, err error) {
		if err != nil {
			b.Fatal(err)
		}
		if resp.Count != 100_000 {
			b.Fatalf("count %d", resp.Count)
		}
	}
	b.Run("limit500/index", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			resp, err := executeRange(db, nil, page, cur, 0, true, nil)
			check(b, resp, err)
		}
	})
	b.Run("limit500/walk", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			rr, err := rangeKeys(db, prefix, end, cur, 501, false, false, true, nil)
			check(b, &pb.RangeResponse{Count: rr.count}, err)
		}
	})
	b.Run("count-only/index", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			resp, err := executeRange(db, nil, count, cur, 0, true, nil)
			check(b, resp, err)
		}
	})
	b.Run("count-only/walk", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			rr, err := rangeKeys(db, prefix, end, cur, 0, true, false, true, nil)
			check(b, &pb.RangeResponse{Count: rr.count}, err)
		}
	})
	// 100 updates of existing pods after the revision read.
	past := &pb.RangeRequest{Key: prefix, RangeEnd: end, Limit: 500, Revision: cur}
	bt := db.NewIndexedBatch()
	cw := newCountWriter(bt, m)
	for j := 0; j < 100; j++ {
		tw := &writeTxn{r: bt, w: bt, beginRev: cur, counts: cw}
		tw.put([]byte(fmt.Sprintf("/registry/pods/ns-%02d/pod-%06d", j%100, j*997)), []byte("v"), 0)
		cur++
	}
	cw.close()
	must(putU64(bt, metaRev, uint64(cur)))
	must(bt.Commit(pebble.NoSync))
	must(bt.Close())
	b.Run("limit500-100-writes-old/index", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			resp, err := executeRange(db, nil, past, cur, 0, true, nil)
			check(b, resp, err)
		}
	})
	b.Run("limit500-100-writes-old/walk", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			rr, err := rangeKeys(db, prefix, end, past.Revision, 501, false, false, true, nil)
			check(b, &pb.RangeResponse{Count: rr.count}, err)
		}
	})
}

// BenchmarkCountApply is what the count index adds to the apply of a put
// (256 B, batches of 100, as BenchmarkPutApply): to a new key among 10M
// (the key filter's case: every put creates a key, so every put updates
// the index) and to one of 100k existing keys (the index is not touched);
// counts=pebble: level 1 past its mirror's cap, read from pebble.
func BenchmarkCountApply(b *testing.B) {
	for _, tc := range []struct {
		name      string
		keys      int
		counts    bool
		mirrorMax int
	}{
		{"new-keys/counts=false", 10_000_000, false, 0},
		{"new-keys/counts=true", 10_000_000, true, math.MaxInt},
		{"new-keys/counts=pebble", 10_000_000, true, 0},
		{"existing-keys/counts=false", 100_000, false, 0},
		{"existing-keys/counts=true", 100_000, true, math.MaxInt},
	} {
		b.Run(tc.name, func(b *testing.B) {
			db, err := OpenPebble("/db", true)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			cache := newLatestCache(leanLatestHalf)
			cache.keys = newKeyFilter(leanKeyFilter)
			rng := rand.New(rand.NewPCG(1, 0))
			val := make([]byte, 256)
			rev := int64(1)
			m := newCountMirror(tc.mirrorMax)
			batch := func(n int) {
				bt := db.NewIndexedBatch()
				var cw *countWriter
				if tc.counts {
					cw = newCountWriter(bt, m)
				}
				for i := 0; i < n; i++ {
					tw := &writeTxn{r: bt, w: bt, beginRev: rev, cache: cache, counts: cw}
					tw.put([]byte(fmt.Sprintf("%08d", rng.IntN(tc.keys))), val, 0)
					rev++
				}
				if tc.counts {
					cw.close()
				}
				must(bt.Commit(pebble.NoSync))
				bt.Close()
				if m.overCap() {
					m.dropLevel1()
				}
			}
			for i := 0; i < 1000; i++ {
				batch(100)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i += 100 {
				batch(100)
			}
		})
	}
}

// BenchmarkCountMirrorMemory reports the heap the Store's mirror of the
// count index takes per live key (bytes/key), for 200k keys of 71 bytes.
func BenchmarkCountMirrorMemory(b *testing.B) {
	const keys = 200_000
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		m := newCountMirror(math.MaxInt)
		key := make([]byte, 0, 80)
		for i := 0; i < keys; i++ {
			key = fmt.Appendf(key[:0], "/registry/pods/namespace-%04d/pod-name-%032d", i%1000, i)
			enc := ""
			for level := 1; level <= countLevel(key); level++ {
				if enc == "" {
					enc = string(appendEncodedKey(nil, key))
				}
				m.levels[level].ReplaceOrInsert(enc, &sepCount{n: 1})
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/keys, "bytes/key")
		runtime.KeepAlive(m)
	}
}

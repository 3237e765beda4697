package storeactor

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestLatestCacheMatchesPebble applies one random workload of puts (with
// and without leases), deletes, txns whose compares decide between a put
// and a delete, and compactions twice: once with a cache so small that it
// rotates on every other write, once without one. Every txn must take the
// same branch, and every version, 'l' entry and lease attachment written
// must be identical: the cache may only save lookups, never change what a
// put or a compare computes.
func TestLatestCacheMatchesPebble(t *testing.T) {
	cached, plain := mustOpen(t), mustOpen(t)
	cache := newLatestCache(1)
	rng := rand.New(rand.NewSource(1))
	rev := int64(1)
	key := func() []byte { return []byte(fmt.Sprintf("k%d", rng.Intn(8))) }
	targets := []pb.Compare_CompareTarget{pb.Compare_VERSION, pb.Compare_CREATE, pb.Compare_MOD, pb.Compare_VALUE, pb.Compare_LEASE}
	branches := map[bool]int{}
	for step := 0; step < 4000; step++ {
		op, k, lease := rng.Intn(12), key(), int64(rng.Intn(3))
		var rt *pb.TxnRequest
		if op >= 10 {
			// A compare whose operand is near what the key may hold, so
			// that both branches are taken.
			c := &pb.Compare{Key: k, Target: targets[rng.Intn(len(targets))], Result: pb.Compare_CompareResult(rng.Intn(4))}
			switch c.Target {
			case pb.Compare_VERSION:
				c.TargetUnion = &pb.Compare_Version{Version: int64(rng.Intn(4))}
			case pb.Compare_CREATE:
				c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: max(0, rev-int64(rng.Intn(20)))}
			case pb.Compare_MOD:
				c.TargetUnion = &pb.Compare_ModRevision{ModRevision: max(0, rev-int64(rng.Intn(20)))}
			case pb.Compare_VALUE:
				c.TargetUnion = &pb.Compare_Value{Value: []byte{byte(step - rng.Intn(20))}}
			case pb.Compare_LEASE:
				c.TargetUnion = &pb.Compare_Lease{Lease: int64(rng.Intn(3))}
			}
			rt = &pb.TxnRequest{
				Compare: []*pb.Compare{c},
				Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: k, Value: []byte{byte(step)}}}}},
				Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: key()}}}},
			}
		}
		var took []bool
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
			case op < 9:
				tw.deleteRange([]byte("k3"), []byte("k6"))
			default:
				resp, err := tw.applyTxn(rt, 0)
				if err != nil {
					t.Fatal(err)
				}
				took = append(took, resp.Succeeded)
			}
			must(b.Commit(pebble.NoSync))
			if db == plain && tw.changes > 0 {
				rev++
			}
		}
		if len(took) == 2 {
			if took[0] != took[1] {
				t.Fatalf("step %d: txn %v took branch %v with the cache, %v without", step, rt.Compare[0], took[0], took[1])
			}
			branches[took[0]]++
		}
	}
	if branches[true] < 100 || branches[false] < 100 {
		t.Fatalf("txns took the success branch %d times and the failure branch %d: not both tried", branches[true], branches[false])
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

// BenchmarkTxnApply is the store's apply cost of Kubernetes' update: a txn
// that puts a 256 B value if the key's mod revision is still the one the
// client read (else reads the key), to one of 100k keys that all exist,
// in batches of 100.
func BenchmarkTxnApply(b *testing.B) {
	for _, cached := range []bool{false, true} {
		b.Run(fmt.Sprintf("cache=%v", cached), func(b *testing.B) {
			db, err := OpenPebble("/db", true)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			var cache *latestCache
			if cached {
				cache = newLatestCache(leanLatestHalf)
			}
			const keys = 100_000
			mod := make([]int64, keys)
			rng := rand.New(rand.NewSource(1))
			val := make([]byte, 256)
			rev := int64(1)
			batch := func(n int, txn bool) {
				bt := db.NewIndexedBatch()
				for i := 0; i < n; i++ {
					k := rng.Intn(keys)
					key := []byte(fmt.Sprintf("%08d", k))
					tw := &writeTxn{r: bt, w: bt, beginRev: rev, cache: cache}
					if txn {
						rt := &pb.TxnRequest{
							Compare: []*pb.Compare{{Key: key, Target: pb.Compare_MOD, Result: pb.Compare_EQUAL,
								TargetUnion: &pb.Compare_ModRevision{ModRevision: mod[k]}}},
							Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: key, Value: val}}}},
							Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: key}}}},
						}
						resp, err := tw.applyTxn(rt, 0)
						if err != nil || !resp.Succeeded {
							b.Fatalf("txn on %s: succeeded %v, %v", key, resp.GetSucceeded(), err)
						}
					} else {
						tw.put(key, val, 0)
					}
					rev++
					mod[k] = rev
				}
				must(bt.Commit(pebble.NoSync))
				bt.Close()
			}
			for i := 0; i < keys; i += 100 {
				batch(100, false)
			}
			for i := 0; i < 2000; i++ {
				batch(100, true)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i += 100 {
				batch(100, true)
			}
		})
	}
}

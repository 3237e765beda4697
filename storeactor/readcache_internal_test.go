package storeactor

import (
	"fmt"
	"testing"
)

func cachedEntries(c *readCache) (n int) {
	for i := range c.shards {
		n += len(c.shards[i].m)
	}
	return n
}

func cacheOne(c *readCache, gen uint64, key string, value []byte) {
	k := []byte(key)
	c.insert(c.shard(k), gen, &cachedVersion{key: k, main: 2, rec: record{create: 2, version: 1, value: value}})
}

// Whatever is read, the cache stays within its byte budget per shard, and
// a value too large for it is not cached at all.
func TestReadCacheStaysBounded(t *testing.T) {
	c := newReadCache(0)
	value := make([]byte, 1000)
	for i := 0; i < 100000; i++ {
		cacheOne(c, c.gen.Load(), fmt.Sprintf("key-%d", i), value)
	}
	for i := range c.shards {
		s := &c.shards[i]
		sum := 0
		for _, e := range s.m {
			sum += e.size()
		}
		if sum != s.bytes || s.bytes > readCacheShardBytes {
			t.Fatalf("shard %d: %d bytes counted, %d held, budget %d", i, s.bytes, sum, readCacheShardBytes)
		}
	}
	if n := cachedEntries(c); n == 0 || n*(1000+cachedOverhead) > readCacheShards*readCacheShardBytes {
		t.Fatalf("%d entries cached", n)
	}
	c.clear()
	cacheOne(c, c.gen.Load(), "big", make([]byte, readCacheShardBytes/8))
	if n := cachedEntries(c); n != 0 {
		t.Fatalf("a value of an eighth of a shard was cached")
	}
}

// An insert that noted gen before an invalidate or a clear is refused: its
// read may predate the write that the invalidate is for.
func TestReadCacheRefusesInsertsFromBeforeAnInvalidate(t *testing.T) {
	c := newReadCache(0)
	for _, drop := range []func(){func() { c.invalidate([][]byte{[]byte("other")}) }, c.clear} {
		gen := c.gen.Load()
		drop()
		cacheOne(c, gen, "k", []byte("v"))
		if n := cachedEntries(c); n != 0 {
			t.Fatalf("stale insert cached")
		}
	}
	cacheOne(c, c.gen.Load(), "k", []byte("v"))
	c.invalidate([][]byte{[]byte("k")})
	if n := cachedEntries(c); n != 0 || c.shard([]byte("k")).bytes != 0 {
		t.Fatalf("invalidate left %d entries", n)
	}
}

package storeactor

import (
	"hash/maphash"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// readCache holds the newest version, value included, of keys that
// single-key Ranges read often, so that such a read is a map lookup instead
// of pebble's two point lookups (the 'l' entry, then the value in 'k'):
// those were most of the store's share of a serializable range. It plays
// the part etcd's in-memory index and mmapped pages play for hot keys,
// without holding every key in memory.
//
// Readers fill it (any goroutine, through Reader.Range); the Store empties
// it of every key an apply batch wrote. Only reads of the DB use it, never
// the Store's apply batch (whose reads must see the batch's own writes).
//
// Invariant: an entry for key k is k's newest version, or k has a newer
// version whose batch is committed and whose invalidate has not finished
// yet, so no View that includes the newer version is published yet. A reader
// holding View R may therefore use an entry whose version is <= R: any
// newer version <= R would have removed it before R was published.
//
// What keeps it: the Store commits a batch, then invalidates (gen is bumped,
// then each written key is deleted under its shard's lock), then publishes
// the View. A reader notes gen before its pebble read and inserts only if
// gen is unchanged, under the shard lock. So a version read before a commit
// is inserted either before the invalidate deletes its key (and is deleted)
// or not at all (gen moved); a reader that noted the bumped gen read pebble
// after the commit and saw the newer version. This needs what is inserted
// to be the newest version in pebble when it was read (the key's 'l'
// entry), not merely the version visible at the reader's revision: a
// reader with an older View that noted the bumped gen would otherwise
// insert the version the commit replaced. Tombstones are never cached.
// clear (every Store start: restart after a panic, snapshot install) drops
// everything and bumps gen.
//
// Memory is bounded: each shard holds at most readCacheShardBytes of keys
// and values and is emptied when an insert would pass that; a value larger
// than an eighth of it is not cached.
type readCache struct {
	seed   maphash.Seed
	gen    atomic.Uint64
	admit  uint32 // a miss is inserted when rand&admit == 0 (see admitMask)
	shards [readCacheShards]readCacheShard
}

const (
	readCacheShards     = 64
	readCacheShardBytes = 256 << 10 // 16 MiB in all
	// admitMask: one eligible miss in 8 is inserted. A hot key gets in
	// after a few reads; a read of a key read once (a scan of a large key
	// space) seldom pays for an insert that will be evicted unused.
	admitMask = 7
	// cachedOverhead approximates an entry's bytes besides key and value
	// (map slot, entry struct, string header).
	cachedOverhead = 96
)

type readCacheShard struct {
	mu    sync.RWMutex
	m     map[string]*cachedVersion
	bytes int
	_     [64]byte // keep shards on separate cache lines
}

// cachedVersion is one key's newest version. key and rec.value are shared
// with the responses built from it and never modified.
type cachedVersion struct {
	key  []byte
	main int64
	rec  record
}

// size is what an entry counts against its shard's bytes.
func (e *cachedVersion) size() int { return len(e.key) + len(e.rec.value) + cachedOverhead }

func newReadCache(admit uint32) *readCache {
	c := &readCache{seed: maphash.MakeSeed(), admit: admit}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*cachedVersion)
	}
	return c
}

func (c *readCache) shard(key []byte) *readCacheShard {
	return &c.shards[maphash.Bytes(c.seed, key)%readCacheShards]
}

// rangeOneKey is rangeOneKey (read.go) answered from the cache when it
// holds key's newest version and that version is visible at rev.
func (c *readCache) rangeOneKey(r pebble.Reader, key []byte, rev int64, countOnly, keysOnly bool) (rangeResult, error) {
	s := c.shard(key)
	s.mu.RLock()
	e := s.m[string(key)]
	s.mu.RUnlock()
	if e != nil && e.main <= rev {
		rr := rangeResult{count: 1}
		if !countOnly {
			rr.kvs = []*mvccpb.KeyValue{e.rec.keyValue(e.key, e.main, keysOnly)}
		}
		return rr, nil
	}
	gen := c.gen.Load()
	withValue := !countOnly && !keysOnly
	// The key's newest version, whatever rev: only that may be cached.
	rec, main, found, err := latest(r, key, math.MaxInt64, withValue)
	switch {
	case err != nil:
		return rangeResult{}, err
	case found && main > rev:
		// Written after the reader's View was loaded, or rev is a past
		// revision: read the version at rev instead (not cached).
		return rangeOneKey(r, key, rev, countOnly, keysOnly)
	}
	rr := oneKeyResult(key, rec, main, found, countOnly, keysOnly)
	if withValue && len(rr.kvs) == 1 && rand.Uint32()&c.admit == 0 {
		c.insert(s, gen, &cachedVersion{key: rr.kvs[0].Key, main: main, rec: rec})
	}
	return rr, nil
}

func (c *readCache) insert(s *readCacheShard, gen uint64, e *cachedVersion) {
	n := e.size()
	if n > readCacheShardBytes/8 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.gen.Load() != gen {
		return // a batch committed since the read: it may have written key
	}
	if old := s.m[string(e.key)]; old != nil {
		s.bytes -= old.size()
	}
	if s.bytes+n > readCacheShardBytes {
		s.m, s.bytes = make(map[string]*cachedVersion), 0
	}
	s.m[string(e.key)] = e
	s.bytes += n
}

// invalidate drops keys, each written by a batch just committed. The Store
// calls it after the commit and before publishing the batch's View.
func (c *readCache) invalidate(keys [][]byte) {
	c.gen.Add(1)
	for _, k := range keys {
		s := c.shard(k)
		s.mu.Lock()
		if e := s.m[string(k)]; e != nil {
			s.bytes -= e.size()
			delete(s.m, string(k))
		}
		s.mu.Unlock()
	}
}

// clear drops every entry: the store's state may have changed in ways no
// invalidate covered (a restart after a panic between a commit and its
// invalidate, an installed snapshot).
func (c *readCache) clear() {
	c.gen.Add(1)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.m, s.bytes = make(map[string]*cachedVersion), 0
		s.mu.Unlock()
	}
}

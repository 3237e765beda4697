package storeactor

// latestCache remembers what a put needs of the version it replaces (not
// the value) for recently written keys, so that a put to a hot key does not
// look up its 'l' entry in pebble. That lookup was the store actor's
// largest cost in the put benchmark: a seek through a 64 MiB memtable
// skiplist, a cache miss per level. A txn's single-key compares and
// deletes in the apply batch ask it too (applyCompare, deleteRange).
//
// It belongs to one Store instance (a restarted Store starts empty) and is
// used only by the Store's apply path, never by concurrent readers.
//
// Invariants:
//   - an entry for key k describes the same version as the 'l' entry of k
//     in the store's committed state plus the apply batch being built:
//     writeTxn.write, the only writer of 'l' entries, updates it with every
//     write. A key known to have no version is cached as a tombstone. A
//     batch that is not committed panics the actor, which drops the cache
//     with the instance.
//   - compaction may delete a tombstone's 'l' entry while the cache still
//     holds the tombstone; users treat both as "no live key".
//   - memory is bounded: at most 2 x half entries (two generations, the
//     older dropped when the newer fills), independent of the key count.
type latestCache struct {
	cur, old map[string]latestMeta
	half     int
	// keys, when set, knows the keys that never had an 'l' entry: those
	// are answered as "no live key" without a lookup (see keyfilter.go).
	keys *keyFilter
	// filterFull, when set, is told once when keys reaches its cap and is
	// dropped, with about how many keys it held.
	filterFull func(keys int)
}

// useFilter makes f the cache's filter of keys never written; a filter
// already full at its cap is dropped.
func (c *latestCache) useFilter(f *keyFilter) {
	c.keys = f
	if f.full {
		c.dropFilter()
	}
}

func (c *latestCache) dropFilter() {
	keys := c.keys.added
	c.keys = nil
	if c.filterFull != nil {
		c.filterFull(keys)
	}
}

// latestMeta is a key's newest version, without its value.
type latestMeta struct {
	main, create, version, lease int64
	tombstone                    bool
}

func newLatestCache(half int) *latestCache {
	return &latestCache{cur: make(map[string]latestMeta), old: map[string]latestMeta{}, half: half}
}

func (c *latestCache) get(key []byte) (latestMeta, bool) {
	if m, ok := c.cur[string(key)]; ok {
		return m, true
	}
	m, ok := c.old[string(key)]
	if ok {
		c.set(key, m) // keep what is still used
		return m, true
	}
	if c.keys != nil && !c.keys.mayContain(key) {
		return latestMeta{tombstone: true}, true
	}
	return m, false
}

func (c *latestCache) set(key []byte, m latestMeta) {
	if len(c.cur) >= c.half {
		c.old, c.cur = c.cur, make(map[string]latestMeta, c.half)
	}
	c.cur[string(key)] = m
	if c.keys != nil && c.keys.add(key) {
		c.dropFilter()
	}
}

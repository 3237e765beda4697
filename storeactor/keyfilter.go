package storeactor

import (
	"hash/maphash"

	"github.com/cockroachdb/pebble/v2"
)

// keyFilter answers "has this key never had a newest-version ('l') entry?"
// without touching pebble. A put to a new key otherwise looks up its 'l'
// entry to find nothing: a seek through the 64 MiB memtable's skiplist (a
// cache miss per level) and the bloom filters of the sstables — the largest
// cost of applying a put to a new key, paid by every member.
//
// It is a scalable blocked Bloom filter: layers of 512-bit blocks (one
// cache line: one miss per layer per lookup), each layer four times the
// previous one's capacity, so no rebuild is ever needed as the key count
// grows; about 10 bits per key (1.25 bytes — the MVCC index etcd keeps in
// memory costs ~100 bytes a key).
//
// Its memory is capped (MemorySizes.KeyFilter): a member's memory must not
// grow with its keyspace. The layer that would pass the cap is not made;
// the filter is dropped instead and says "maybe" for every key from then
// on, so puts to new keys look them up in pebble (its own bloom filters)
// as they would without it. With the lean 32 MiB it serves keyspaces up
// to about 21M keys (layers of 64Ki..16Mi keys); the next layer alone
// would take 80 MiB.
//
// Invariants: every key written to 'l' through writeTxn.write is added
// (no false negatives); the filter belongs to one Store instance, built
// from pebble's 'l' entries when it starts (after a restart or a snapshot
// install), so keys of a batch that was never committed only add false
// positives. Compaction removing 'l' entries leaves stale positives, which
// are only a lookup more.
type keyFilter struct {
	layers []*filterLayer
	bytes  int  // the layers' bytes
	max    int  // the most the layers may take
	full   bool // dropped at the cap: every key may have been added
	added  int  // keys added that the filter did not know yet
}

type filterLayer struct {
	blocks   [][8]uint64
	keys     int // added so far
	capacity int
}

const (
	filterFirstCapacity = 1 << 16
	filterGrowth        = 4
	filterBitsPerKey    = 10
	filterProbes        = 7
)

var filterSeed = maphash.MakeSeed()

// newKeyFilter is an empty filter of at most maxBytes.
func newKeyFilter(maxBytes int) *keyFilter {
	keyFilterBytes.Set(0)
	return &keyFilter{max: maxBytes}
}

// layerBytes is what a layer for capacity keys takes.
func layerBytes(capacity int) int { return (capacity*filterBitsPerKey + 511) / 512 * 64 }

func newFilterLayer(capacity int) *filterLayer {
	return &filterLayer{blocks: make([][8]uint64, layerBytes(capacity)/64), capacity: capacity}
}

// add records key. It reports whether the filter is full: it dropped its
// layers, now or before.
func (f *keyFilter) add(key []byte) (full bool) {
	if f.full {
		return true
	}
	h := maphash.Bytes(filterSeed, key)
	if n := len(f.layers); n > 0 && f.layers[n-1].mayContain(h) {
		return
	}
	if n := len(f.layers); n == 0 || f.layers[n-1].keys >= f.layers[n-1].capacity {
		capacity := filterFirstCapacity
		if n > 0 {
			capacity = f.layers[n-1].capacity * filterGrowth
		}
		if f.bytes+layerBytes(capacity) > f.max {
			f.layers, f.bytes, f.full = nil, 0, true
			keyFilterBytes.Set(0)
			return true
		}
		f.layers = append(f.layers, newFilterLayer(capacity))
		f.bytes += layerBytes(capacity)
		keyFilterBytes.Set(float64(f.bytes))
	}
	f.layers[len(f.layers)-1].add(h)
	f.added++
	return false
}

// mayContain is false only for a key never added.
func (f *keyFilter) mayContain(key []byte) bool {
	if f.full {
		return true
	}
	h := maphash.Bytes(filterSeed, key)
	for i := len(f.layers) - 1; i >= 0; i-- {
		if f.layers[i].mayContain(h) {
			return true
		}
	}
	return false
}

// The block is chosen by the hash's high half; the filterProbes bits
// within it by double hashing of the low bits.
func (l *filterLayer) add(h uint64) {
	block := &l.blocks[(uint64(uint32(h>>32))*uint64(len(l.blocks)))>>32]
	h1, h2 := uint32(h), uint32(h>>29)|1
	for i := uint32(0); i < filterProbes; i++ {
		pos := (h1 + i*h2) & 511
		block[pos>>6] |= 1 << (pos & 63)
	}
	l.keys++
}

func (l *filterLayer) mayContain(h uint64) bool {
	block := &l.blocks[(uint64(uint32(h>>32))*uint64(len(l.blocks)))>>32]
	h1, h2 := uint32(h), uint32(h>>29)|1
	for i := uint32(0); i < filterProbes; i++ {
		pos := (h1 + i*h2) & 511
		if block[pos>>6]&(1<<(pos&63)) == 0 {
			return false
		}
	}
	return true
}

// loadKeyFilter builds the filter, of at most maxBytes, from every 'l'
// entry in r, and counts the live keys among them (View.Keys) on the way.
func loadKeyFilter(r pebble.Reader, maxBytes int) (f *keyFilter, live int64) {
	f = newKeyFilter(maxBytes)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixLatest}, UpperBound: latestSpaceUpper})
	must(err)
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		f.add(decodeUserKey(it.Key()[1:]))
		// An 'l' value is main(8) then the record, flags first.
		if v := it.Value(); len(v) > 8 && v[8]&flagTombstone == 0 {
			live++
		}
	}
	must(it.Error())
	return f, live
}

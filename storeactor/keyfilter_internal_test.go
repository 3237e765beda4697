package storeactor

import (
	"fmt"
	"testing"
)

// No false negatives across layers, and a false positive rate near the
// design's ~1-2 %.
func TestKeyFilter(t *testing.T) {
	f := newKeyFilter(leanKeyFilter)
	const n = 400_000 // spans several layers
	for i := 0; i < n; i++ {
		f.add([]byte(fmt.Sprintf("key-%d", i)))
	}
	if len(f.layers) < 3 {
		t.Fatalf("%d layers for %d keys", len(f.layers), n)
	}
	for i := 0; i < n; i++ {
		if !f.mayContain([]byte(fmt.Sprintf("key-%d", i))) {
			t.Fatalf("key-%d: false negative", i)
		}
	}
	fp := 0
	for i := 0; i < n; i++ {
		if f.mayContain([]byte(fmt.Sprintf("other-%d", i))) {
			fp++
		}
	}
	if rate := float64(fp) / n; rate > 0.05 {
		t.Fatalf("false positive rate %.3f", rate)
	} else {
		t.Logf("false positive rate %.4f over %d layers", rate, len(f.layers))
	}
}

// The filter stops at its cap: with room for two layers it holds the
// first two layers' keys without a false negative, and the key that needs
// a third drops it: from then on every key may have been added, the
// layers are freed, and the latest cache stops consulting it and says so
// once, with how many keys it had.
func TestKeyFilterCap(t *testing.T) {
	max := layerBytes(filterFirstCapacity) + layerBytes(filterFirstCapacity*filterGrowth)
	f := newKeyFilter(max)
	held := filterFirstCapacity + filterFirstCapacity*filterGrowth
	key := func(i int) []byte { return fmt.Appendf(nil, "key-%d", i) }
	c := newLatestCache(leanLatestHalf)
	var told []int
	c.filterFull = func(keys int) { told = append(told, keys) }
	c.useFilter(f)
	i := 0
	for ; f.added < held; i++ {
		c.set(key(i), latestMeta{main: 1})
		if c.keys == nil {
			t.Fatalf("dropped after %d keys, at %d bytes of %d", f.added, f.bytes, max)
		}
	}
	if f.bytes != max || len(f.layers) != 2 {
		t.Fatalf("%d layers, %d bytes for %d keys; want 2, %d", len(f.layers), f.bytes, f.added, max)
	}
	for j := range i {
		if !f.mayContain(key(j)) {
			t.Fatalf("key-%d: false negative before the cap", j)
		}
	}
	c.set(key(i), latestMeta{main: 1})
	if c.keys != nil || !f.full || f.layers != nil || f.bytes != 0 {
		t.Fatalf("past the cap: cache filter %v, full %v, %d layers, %d bytes", c.keys != nil, f.full, len(f.layers), f.bytes)
	}
	if len(told) != 1 || told[0] != held {
		t.Fatalf("told %v, want once with %d keys", told, held)
	}
	if !f.mayContain([]byte("never-added")) || !f.add([]byte("another")) {
		t.Fatal("a full filter must say every key may have been added")
	}
	if m, ok := c.get([]byte("never-added")); ok {
		t.Fatalf("a dropped filter still answered for a new key: %+v", m)
	}

	// One built full at start (loadKeyFilter) is dropped at once.
	g := newKeyFilter(layerBytes(filterFirstCapacity))
	for j := 0; !g.full; j++ {
		g.add(key(j))
	}
	told = nil
	d := newLatestCache(leanLatestHalf)
	d.filterFull = func(keys int) { told = append(told, keys) }
	d.useFilter(g)
	if d.keys != nil || len(told) != 1 || told[0] != filterFirstCapacity {
		t.Fatalf("a full filter at start: kept %v, told %v", d.keys != nil, told)
	}
}

func BenchmarkKeyFilterMiss(b *testing.B) {
	f := newKeyFilter(leanKeyFilter)
	for i := 0; i < 1_000_000; i++ {
		f.add([]byte(fmt.Sprintf("key-%d", i)))
	}
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("other-%d", i))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f.mayContain(keys[i&1023])
	}
}

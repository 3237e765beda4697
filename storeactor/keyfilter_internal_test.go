package storeactor

import (
	"fmt"
	"testing"
)

// No false negatives across layers, and a false positive rate near the
// design's ~1-2 %.
func TestKeyFilter(t *testing.T) {
	f := newKeyFilter()
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

func BenchmarkKeyFilterMiss(b *testing.B) {
	f := newKeyFilter()
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

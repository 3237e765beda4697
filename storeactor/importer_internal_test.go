package storeactor

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
)

// sortVersions orders a chunk as comparing whole 'k' keys does (equal
// keys in arrival order), whatever the keys share: long common prefixes,
// keys that are prefixes of others, zero bytes, keys shorter than the
// 16 bytes it compares first.
func TestSortVersionsMatchesKeyOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	alphabet := []byte{0, 1, 'a', 'b', 0xFF}
	for round := range 200 {
		c := newChunkForTest()
		prefix := bytes.Repeat([]byte("/registry/"), rng.IntN(3))
		for i := range 1 + rng.IntN(300) {
			key := append([]byte(nil), prefix...)
			for range rng.IntN(20) {
				key = append(key, alphabet[rng.IntN(len(alphabet))])
			}
			start := len(c.arena)
			c.arena = versionKey(c.arena, key, int64(1+rng.IntN(4)))
			c.versions = append(c.versions, importVersion{key: span{start, len(c.arena) - start}, sub: int64(i)})
		}
		got := c.sortVersions()
		want := make([]int32, len(c.versions))
		for i := range want {
			want[i] = int32(i)
		}
		slices.SortStableFunc(want, func(a, b int32) int {
			return bytes.Compare(c.bytes(c.versions[a].key), c.bytes(c.versions[b].key))
		})
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: order %v, want %v", round, got, want)
		}
	}
}

func newChunkForTest() *importChunk { return &importChunk{} }

// splitAtKeys cuts a chunk's key order into parts that, joined, are the
// order, with no key's versions in two parts, whatever the number of
// versions a key has (one key holding them all leaves parts empty).
func TestSplitAtKeysKeepsKeysWhole(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for round := range 200 {
		c := newChunkForTest()
		keys := 1 + rng.IntN(20)
		for i := range 1 + rng.IntN(200) {
			start := len(c.arena)
			c.arena = versionKey(c.arena, []byte{byte('a' + rng.IntN(keys))}, int64(1+i))
			c.versions = append(c.versions, importVersion{key: span{start, len(c.arena) - start}})
		}
		order := c.sortVersions()
		for n := 1; n <= 4; n++ {
			parts := splitAtKeys(c, order, n)
			if len(parts) != n {
				t.Fatalf("round %d: %d parts, want %d", round, len(parts), n)
			}
			if joined := slices.Concat(parts...); !slices.Equal(joined, order) {
				t.Fatalf("round %d, %d parts: joined %v, want %v", round, n, joined, order)
			}
			for i := 1; i < len(parts); i++ {
				prev := slices.Concat(parts[:i]...)
				if len(prev) > 0 && len(parts[i]) > 0 && sameKey(c, prev[len(prev)-1], parts[i][0]) {
					t.Fatalf("round %d, %d parts: a key's versions in parts %d and %d", round, n, i-1, i)
				}
			}
		}
	}
}

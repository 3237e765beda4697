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

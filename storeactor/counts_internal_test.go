package storeactor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/RaduBerinde/btreemap"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// separatorKeys are a few keys of every level under "a/" and "b/x/".
var separatorKeys = sync.OnceValue(func() (keys []string) {
	for level := 1; level <= countLevels; level++ {
		keys = append(keys, SeparatorKeys("a/", level, 3)...)
		keys = append(keys, SeparatorKeys("b/x/", level, 2)...)
	}
	return keys
})

// countModel drives writeTxns over random batches the way the Store's
// apply does (indexed batch, a countWriter per batch), on a DB whose FS
// can be crash-cloned.
type countModel struct {
	t    *testing.T
	rng  *rand.Rand
	fs   *vfs.MemFS
	db   *pebble.DB
	m    *countMirror
	rev  int64
	keys []string
}

// newCountModel's mirror may hold mirrorMax bytes of level 1: as the
// Store, the model drops it between batches once it holds more.
func newCountModel(t *testing.T, seed int64, mirrorMax int) *countModel {
	m := &countModel{t: t, rng: rand.New(rand.NewPCG(uint64(seed), 0)), fs: vfs.NewCrashableMem(), rev: 1}
	m.db = m.open(m.fs)
	must(putU64(m.db, metaCounts, countFormat)) // an empty store's index is empty
	m.m = newCountMirror(mirrorMax)
	for _, p := range []string{"a/", "b/", "b/x/", "c"} {
		for i := 0; i < 60; i++ {
			m.keys = append(m.keys, fmt.Sprintf("%s%d", p, i))
		}
	}
	m.keys = append(m.keys, separatorKeys()...)
	m.keys = append(m.keys, "", "\x00", "\x00\x00a", "a", "b\xff")
	t.Cleanup(func() { m.db.Close() })
	return m
}

func (m *countModel) open(fs vfs.FS) *pebble.DB {
	m.t.Helper()
	db, err := OpenPebbleFS(fs, "/db")
	if err != nil {
		m.t.Fatal(err)
	}
	return db
}

func (m *countModel) key() []byte { return []byte(m.keys[m.rng.IntN(len(m.keys))]) }

// keyRange is a random [key, end): one of the prefixes, two random keys
// (maybe inverted), or from a key on (end empty).
func (m *countModel) keyRange() (key, end []byte) {
	switch m.rng.IntN(4) {
	case 0:
		p := []string{"a/", "b/", "b/x/", "c", ""}[m.rng.IntN(5)]
		if p == "" {
			return []byte{0}, []byte{}
		}
		return []byte(p), prefixEnd([]byte(p))
	case 1:
		return m.key(), []byte{}
	default:
		return m.key(), m.key()
	}
}

// batch applies 1..20 random changes in one committed batch (synced or
// not) and returns the batch's revisions.
func (m *countModel) batch() {
	b := m.db.NewIndexedBatch()
	cw := newCountWriter(b, m.m)
	for n := 1 + m.rng.IntN(20); n > 0; n-- {
		tw := &writeTxn{r: b, w: b, beginRev: m.rev, counts: cw}
		switch r := m.rng.IntN(20); {
		case r < 13:
			tw.put(m.key(), []byte("v"), 0)
		case r < 18:
			tw.deleteRange(m.key(), nil)
		default:
			key, end := m.keyRange()
			tw.deleteRange(key, end)
		}
		if m.rng.IntN(4) == 0 {
			// A range counted inside the batch, as a txn's range is.
			key, end := m.keyRange()
			cw.flush()
			m.checkCount(b, key, end, m.rng.Int64N(tw.rev())+1, tw.rev())
		}
		if tw.changes > 0 {
			m.rev++
		}
	}
	cw.close()
	must(putU64(b, metaRev, uint64(m.rev)))
	opts := pebble.NoSync
	if m.rng.IntN(3) == 0 {
		opts = pebble.Sync
	}
	must(b.Commit(opts))
	must(b.Close())
	if m.m.overCap() {
		m.m.dropLevel1()
	}
}

// checkCount compares countAt with a walk of [key, end) at rev.
func (m *countModel) checkCount(r pebble.Reader, key, end []byte, rev, cur int64) {
	m.t.Helper()
	want, err := walkCount(r, key, end, rev)
	if err != nil {
		m.t.Fatal(err)
	}
	got, err := countAt(r, key, end, rev, cur)
	if err != nil {
		m.t.Fatal(err)
	}
	if got != want {
		m.t.Fatalf("count of [%q, %q) at %d (current %d): %d, a walk finds %d", key, end, rev, cur, got, want)
	}
}

// TestCountIndexMatchesWalk: after any sequence of puts and deletes, in
// batches, the count index is the one its live keys define (entry by
// entry), and counts from it — at the current revision, at past ones
// (history correction) and inside a batch — are what a walk finds; also
// on what a crash (unsynced writes lost or half kept) leaves on disk. With
// level 1 mirrored throughout, dropped part way (cap 200 bytes, 3 of the model's 5-10 live
// separators) and never mirrored (cap 0: read from pebble from the first
// batch on).
func TestCountIndexMatchesWalk(t *testing.T) {
	seeds, batches := 4, 150
	if os.Getenv("METASTORE_LONG") == "1" {
		seeds, batches = 20, 1000
	}
	for seed := int64(1); seed <= int64(seeds); seed++ {
		for _, mirrorMax := range []int{math.MaxInt, 200, 0} {
			t.Run(fmt.Sprintf("%d/mirror=%d", seed, mirrorMax), func(t *testing.T) {
				testCountIndexMatchesWalk(t, seed, batches, mirrorMax)
			})
		}
	}
}

func testCountIndexMatchesWalk(t *testing.T, seed int64, batches, mirrorMax int) {
	m := newCountModel(t, seed, mirrorMax)
	for i := 0; i < batches; i++ {
		m.batch()
		if err := checkCountIndex(m.db); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if err := m.m.equal(m.db); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if m.m.levels[1] != nil {
			want := 0
			for k := range m.m.levels[1].Ascend(btreemap.Min[string](), btreemap.Max[string]()) {
				want += sepEntryBytes(k)
			}
			if m.m.bytes() != want {
				t.Fatalf("batch %d: level 1 mirror counted as %d bytes, its separators make %d", i, m.m.bytes(), want)
			}
		}
		for j := 0; j < 5; j++ {
			key, end := m.keyRange()
			m.checkCount(m.db, key, end, m.rng.Int64N(m.rev)+1, m.rev)
		}
		if m.rng.IntN(25) == 0 {
			crashed := m.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: m.rng.IntN(101), RNG: m.rng})
			db := m.open(crashed)
			err := checkCountIndex(db)
			db.Close()
			if err != nil {
				t.Fatalf("after a crash at batch %d: %v", i, err)
			}
		}
	}
	if mirrored := m.m.levels[1] != nil; mirrored != (mirrorMax == math.MaxInt) {
		t.Fatalf("level 1 mirrored at the end: %v (cap %d)", mirrored, mirrorMax)
	}
}

// TestCountIndexBuild: an index built from a store's data is the one
// kept up to date while writing it.
func TestCountIndexBuild(t *testing.T) {
	m := newCountModel(t, 7, math.MaxInt)
	for i := 0; i < 100; i++ {
		m.batch()
	}
	kept := dumpCountIndex(t, m.db)
	b := m.db.NewBatch()
	if _, err := buildCountIndex(m.db, b); err != nil {
		t.Fatal(err)
	}
	must(b.Commit(pebble.Sync))
	if built := dumpCountIndex(t, m.db); built != kept {
		t.Fatalf("built index differs from the maintained one:\nbuilt:\n%s\nmaintained:\n%s", built, kept)
	}
	if kept == "" {
		t.Fatal("empty index")
	}
}

func dumpCountIndex(t *testing.T, db *pebble.DB) string {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: countSpaceLow, UpperBound: countSpaceUpper})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out string
	for ok := it.First(); ok; ok = it.Next() {
		out += fmt.Sprintf("%q=%x\n", it.Key(), it.Value())
	}
	return out
}

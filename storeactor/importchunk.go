package storeactor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// An Importer's chunks: versions gathered in revision order, sorted into
// the store's key order and written as tables pebble ingests, by a writer
// goroutine while the next chunk fills (see Importer).

// importChunkBytes bounds the keys and records of one chunk (a variable
// for tests).
var importChunkBytes = 64 << 20

// importChunk is the versions gathered since the last ingestion: their
// 'k' keys and records in arena, in arrival (revision) order.
type importChunk struct {
	arena    []byte
	versions []importVersion
	// sortKeys are sortVersions' (by version), apart from versions: the
	// history's writer reads versions while they are computed.
	sortKeys [][2]uint64
}

type importVersion struct {
	key, rec  span // 'k' key and record, in the arena
	main, sub int64
	tombstone bool
}

type span struct{ off, len int }

// newImportChunk makes a chunk whose arena holds a full chunk and one
// more version of etcd's largest (1.5 MiB requests) without growing.
func newImportChunk() *importChunk {
	return &importChunk{arena: make([]byte, 0, importChunkBytes+2<<20), versions: make([]importVersion, 0, importChunkBytes/512)}
}

func (c *importChunk) bytes(s span) []byte { return c.arena[s.off : s.off+s.len] }

// writer ingests the chunks handed to it, in order, until work is closed
// or one fails (it then drops the rest); the first failure is also
// published at once, so that the caller stops filling chunks.
func (im *Importer) writer() {
	var err error
	for c := range im.work {
		if err == nil {
			if err = im.ingestChunk(c); err != nil {
				im.failed.Store(&err)
			}
		}
		c.arena, c.versions = c.arena[:0], c.versions[:0]
		select {
		case im.spare <- c:
		default:
		}
	}
	im.written <- err
}

// handOff gives the chunk being filled to the writer and starts another.
func (im *Importer) handOff() error {
	if p := im.failed.Load(); p != nil {
		return *p
	}
	if len(im.chunk.versions) == 0 {
		return nil
	}
	im.work <- im.chunk
	select {
	case im.chunk = <-im.spare:
	default:
		im.chunk = newImportChunk()
	}
	return nil
}

// stop waits for the writer to finish what it was given.
func (im *Importer) stop() error {
	if im.stopped {
		return nil
	}
	im.stopped = true
	close(im.work)
	return <-im.written
}

// ingestChunk writes the chunk as tables — its history entries in
// revision order, and its versions in key order with each key's newest
// version of the chunk, in importWriters parts of the key order — and has
// pebble ingest them together (their spans do not overlap: 'h', and each
// part's 'k' and 'l' keys, split at a key). The tables are written side by
// side: the import is bound by the CPU of sorting, encoding and
// compressing them, and the reader of the source keeps only part of a
// core busy.
func (im *Importer) ingestChunk(c *importChunk) error {
	var paths []string
	defer func() {
		for _, p := range paths {
			_ = os.Remove(p)
		}
	}()
	tables := make([]importTable, 0, 1+2*importWriters)
	for range cap(tables) {
		t, err := im.newTable()
		if err != nil {
			for _, t := range tables {
				t.w.Close()
			}
			return err
		}
		tables = append(tables, t)
		paths = append(paths, t.path)
	}
	hist := tables[0]
	errs := make([]error, 1+importWriters)
	var histN int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, err := im.writeHistory(c, hist.w)
		histN, errs[0] = n, errors.Join(err, hist.w.Close())
	}()
	order := c.sortVersions()
	for i, part := range splitAtKeys(c, order, importWriters) {
		versions, latest := tables[1+2*i], tables[2+2*i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := im.writeVersions(c, part, versions.w, latest.w)
			errs[1+i] = errors.Join(err, versions.w.Close(), latest.w.Close())
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	ingest := paths[:0:0]
	for i, t := range tables {
		if i == 0 && histN == 0 {
			continue // all below the history floor
		}
		if m, err := t.w.Metadata(); err == nil && m.Properties.NumEntries == 0 {
			continue // an empty part
		}
		ingest = append(ingest, t.path)
	}
	if err := im.db.Ingest(context.Background(), ingest); err != nil {
		return fmt.Errorf("storeactor: import: ingest: %w", err)
	}
	return nil
}

// importWriters is how many parts of a chunk's key order are written at
// once (with its history: one writer more than the machines this runs on
// have cores, at least).
const importWriters = 2

// splitAtKeys cuts order (versions in key order) into n parts of about
// equal length, each cut between two keys, never inside one key's
// versions. Parts may be empty.
func splitAtKeys(c *importChunk, order []int32, n int) [][]int32 {
	parts := make([][]int32, 0, n)
	for i := n; i > 1; i-- {
		cut := len(order) / i
		for cut > 0 && cut < len(order) && sameKey(c, order[cut-1], order[cut]) {
			cut++
		}
		parts = append(parts, order[:cut])
		order = order[cut:]
	}
	return append(parts, order)
}

// sameKey says whether versions a and b are of one key.
func sameKey(c *importChunk, a, b int32) bool {
	ka, kb := c.bytes(c.versions[a].key), c.bytes(c.versions[b].key)
	return bytes.Equal(ka[:len(ka)-8], kb[:len(kb)-8])
}

type importTable struct {
	path string
	w    *sstable.Writer
}

// newTable creates the next chunk table's file and writer.
func (im *Importer) newTable() (importTable, error) {
	im.tables++
	path := filepath.Join(im.dir, fmt.Sprintf("import-%06d.sst", im.tables))
	f, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return importTable{}, err
	}
	return importTable{path, sstable.NewWriter(objstorageprovider.NewFileWritable(newUnsyncedFile(f)), im.wopts)}, nil
}

// unsyncedFile buffers a table's writes in large blocks (pebble's writer
// hands its file 4 KiB at a time) and does not sync it: Finish syncs
// every table of the DB once the import is done (syncTables), so the
// kernel writes them back meanwhile instead of the writer waiting for
// each. Until then a crash loses them, and the import with them: a failed
// import is discarded whole.
type unsyncedFile struct {
	vfs.File
	bw *bufio.Writer
}

func newUnsyncedFile(f vfs.File) *unsyncedFile {
	return &unsyncedFile{File: f, bw: bufio.NewWriterSize(f, 1<<20)}
}

func (f *unsyncedFile) Write(p []byte) (int, error) { return f.bw.Write(p) }
func (f *unsyncedFile) Sync() error                 { return f.bw.Flush() }
func (f *unsyncedFile) Close() error                { return errors.Join(f.bw.Flush(), f.File.Close()) }

// syncTables syncs every table file of the DB in dir.
func syncTables(dir string) error {
	names, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range names {
		if filepath.Ext(e.Name()) != ".sst" {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		if err := errors.Join(f.Sync(), f.Close()); err != nil {
			return err
		}
	}
	return nil
}

// writeHistory writes the chunk's history entries ('h' main sub -> flag
// + key, see appendHistoryValue): the chunk is in revision order, which is
// theirs. A version a later one of its key at the same revision shadows
// keeps its record in its entry (flagShadowed); a revision's versions are
// never split between chunks (AddVersion).
func (im *Importer) writeHistory(c *importChunk, w *sstable.Writer) (int, error) {
	var key, val, user []byte
	n := 0
	var last map[string]int // in a revision of several versions: each key's last
	for i, v := range c.versions {
		if v.main < im.histFrom {
			continue
		}
		if i == 0 || c.versions[i-1].main != v.main {
			last = c.lastOfKeys(i)
		}
		k := c.bytes(v.key)
		user = appendDecodedKey(user[:0], k[1:len(k)-8])
		key = historyKey(key[:0], v.main, v.sub)
		if last != nil && last[string(k)] != i {
			val = appendShadowedHistory(val[:0], user, v.tombstone, c.bytes(v.rec))
		} else {
			val = appendHistoryValue(val[:0], user, v.tombstone)
		}
		if err := w.Set(key, val); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// lastOfKeys maps each key of the revision whose first version is i to
// the index of its last version there (the one 'k' keeps); nil when the
// revision has one version.
func (c *importChunk) lastOfKeys(i int) map[string]int {
	main := c.versions[i].main
	if i+1 == len(c.versions) || c.versions[i+1].main != main {
		return nil
	}
	last := map[string]int{}
	for j := i; j < len(c.versions) && c.versions[j].main == main; j++ {
		last[string(c.bytes(c.versions[j].key))] = j
	}
	return last
}

// writeVersions writes the chunk's 'k' entries in key order to versions
// and, to latest, an 'l' entry for each key: its newest version in the
// chunk, the first of its key in that order. Two versions of a key at
// one main revision (a txn that deleted a range and put a key in it)
// share a 'k' key: the later one (higher sub) is kept, as the Store keeps
// it.
func (im *Importer) writeVersions(c *importChunk, order []int32, versions, latest *sstable.Writer) error {
	var lkey, lval []byte
	newKey := true // order[i] is the first of its key
	for i, o := range order {
		v := &c.versions[o]
		k := c.bytes(v.key)
		p := k[:len(k)-8] // 'k' enc(key)
		sameKeyNext := false
		if i+1 < len(order) {
			sameKeyNext = sameKey(c, o, order[i+1])
		}
		if sameKeyNext && c.versions[order[i+1]].main == v.main {
			continue // the next is the later version at this revision
		}
		if err := versions.Set(k, c.bytes(v.rec)); err != nil {
			return err
		}
		if newKey {
			rec, err := decodeRecord(c.bytes(v.rec))
			if err != nil {
				return err
			}
			lkey = append(append(lkey[:0], prefixLatest), p[1:]...)
			lval = appendLatest(lval[:0], v.main, &rec)
			if err := latest.Set(lkey, lval); err != nil {
				return err
			}
		}
		newKey = !sameKeyNext
	}
	return nil
}

// sortVersions returns the chunk's versions in 'k' key order (equal keys
// in arrival order). Keys share long prefixes ("/registry/pods/..."), so
// each version first gets, as two integers, the 16 bytes of its key after
// the prefix every key of the chunk shares (zero-padded): most
// comparisons end there, the others compare whole keys. Zero padding
// keeps the order: a key that is a prefix of another ties with it or
// sorts first.
func (c *importChunk) sortVersions() []int32 {
	first := c.bytes(c.versions[0].key)
	common := len(first)
	for _, v := range c.versions[1:] {
		k := c.bytes(v.key)
		n := min(common, len(k))
		i := 0
		for i < n && k[i] == first[i] {
			i++
		}
		common = i
	}
	var pad [16]byte
	c.sortKeys = slices.Grow(c.sortKeys[:0], len(c.versions))[:len(c.versions)]
	for i := range c.versions {
		k := c.bytes(c.versions[i].key)[common:]
		b := pad[:0]
		if len(k) < 16 {
			b = append(append(b, k...), make([]byte, 16-len(k))...)
		} else {
			b = k[:16]
		}
		c.sortKeys[i] = [2]uint64{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:16])}
	}
	order := make([]int32, len(c.versions))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int {
		ka, kb := &c.sortKeys[a], &c.sortKeys[b]
		switch {
		case ka[0] != kb[0]:
			return cmpU64(ka[0], kb[0])
		case ka[1] != kb[1]:
			return cmpU64(ka[1], kb[1])
		}
		return bytes.Compare(c.bytes(c.versions[a].key), c.bytes(c.versions[b].key))
	})
	return order
}

func cmpU64(a, b uint64) int {
	if a < b {
		return -1
	}
	return 1
}

package storeactor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"go.etcd.io/etcd/api/v3/authpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// Importer writes a new store DB holding another MVCC store's state —
// every version it still has, its leases, users and roles, its revision
// and compaction point — as the Store would hold it had it applied the
// same history and compacted where the source did (`metastoreutl migrate
// from-etcd`).
//
// It streams. Versions arrive in revision order and are gathered in
// chunks of at most importChunkBytes; each chunk is sorted into the
// store's key order and written as sstables — its history entries, and
// its versions, and each key's newest version in the chunk — which pebble
// ingests, so no version passes through a memtable. A writer goroutine
// does that for one chunk while the caller fills the next (two cores:
// reading the source and writing the tables side by side). A later chunk's
// newest-version entry shadows an earlier one's (ingested later, it is
// newer to pebble), so each key's 'l' entry reads as its newest version
// overall. A last pass over the 'l' entries (small: no values) counts the
// live keys and attaches them to their leases. Memory is bounded by the
// two chunks (and the set of lease ids).
//
// Invariants of the result, as for a store that applied the history: each
// version is a 'k' entry; every key with a 'k' entry has an 'l' entry
// repeating its newest version; a history ('h') entry exists for every
// version at or above the history floor (see NewImporter); live keys
// naming an existing lease are attached to it.
type Importer struct {
	db       *pebble.DB
	wopts    sstable.WriterOptions
	dir      string // where chunk tables are written before ingestion
	dbDir    string
	histFrom int64
	leases   map[int64]struct{}
	last     [2]int64 // main, sub of the last version added
	live     int64    // see View.LiveBytes
	stats    ImportStats
	b        *pebble.Batch
	chunk    *importChunk      // being filled
	work     chan *importChunk // to the writer
	spare    chan *importChunk // from the writer, emptied
	written  chan error        // the writer's outcome, once work is closed
	failed   atomic.Pointer[error]
	tables   int  // written so far (the writer's)
	stopped  bool // work is closed and written read
	closed   bool
}

// ImportStats counts what an Importer wrote.
type ImportStats struct {
	Versions   int64 // versions written, tombstones included
	Tombstones int64
	Keys       int64 // keys whose newest version is live (not deleted)
	Leases     int64
	// Checkpointed counts the leases with a remaining TTL from a checkpoint.
	Checkpointed int64
	Attached     int64 // live keys attached to a lease
	// Unattached counts live keys naming a lease that does not exist: they
	// keep the lease id in their record but are attached to nothing, as
	// etcd's lessor leaves them when it loads such a backend.
	Unattached int64
	Users      int64
	Roles      int64
}

// ImportState is the store state Finish records.
type ImportState struct {
	Rev         int64 // current revision
	CompactRev  int64 // compaction point clients see; -1: never
	CompactDone int64 // physical compaction finished up to here; -1: never
	Applied     uint64
	AppliedTerm uint64
	AuthEnabled bool
	AuthRev     uint64 // 0: the default (1)
}

// importBatchBytes bounds a batch of the last pass before it is committed.
const importBatchBytes = 4 << 20

// NewImporter creates a store DB in dir, which must not hold one, and
// starts an import into it. Versions at revisions >= historyFrom get
// history entries (watch events); those below are the newest versions a
// compaction kept, which the store keeps without history. For a source
// compacted at C whose physical compaction finished at F (<= C),
// historyFrom is F (0 if it never compacted): the Store resumes a
// compaction from F to C as it does after a restart.
//
// The DB is written without pebble's WAL and without compactions (Finish
// flushes it; the member compacts its tables once it runs): a failed
// import is discarded whole, never resumed.
func NewImporter(dir string, historyFrom int64) (*Importer, error) {
	opts := PebbleOptions()
	opts.ErrorIfExists = true
	opts.DisableWAL = true
	opts.DisableAutomaticCompactions = true
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	opts = opts.Clone()
	opts.EnsureDefaults()
	im := &Importer{
		db:       db,
		wopts:    opts.MakeWriterOptions(0, db.FormatMajorVersion().MaxTableFormat()),
		dir:      filepath.Dir(filepath.Clean(dir)),
		dbDir:    dir,
		histFrom: historyFrom,
		leases:   map[int64]struct{}{},
		b:        db.NewBatch(),
		chunk:    newImportChunk(),
		work:     make(chan *importChunk),
		spare:    make(chan *importChunk, 1),
		written:  make(chan error, 1),
	}
	go im.writer()
	return im, nil
}

// AddVersion adds one version: kv at kv.ModRevision and sub revision
// sub, or, with tombstone, the deletion of kv.Key there (kv's other
// fields are then ignored). Versions must come in revision order.
func (im *Importer) AddVersion(kv *mvccpb.KeyValue, sub int64, tombstone bool) error {
	main := kv.ModRevision
	if main < 1 || sub < 0 || main < im.last[0] || (main == im.last[0] && sub <= im.last[1] && im.stats.Versions > 0) {
		return fmt.Errorf("storeactor: import: version %d.%d of %q out of revision order (after %d.%d)",
			main, sub, kv.Key, im.last[0], im.last[1])
	}
	if len(kv.Key) == 0 {
		return fmt.Errorf("storeactor: import: version %d.%d has an empty key", main, sub)
	}
	if len(im.chunk.arena) >= importChunkBytes && main != im.last[0] {
		// Between revisions only: a shadowed version's chunk must hold
		// the version that shadows it (writeHistory).
		if err := im.handOff(); err != nil {
			return err
		}
	}
	im.last = [2]int64{main, sub}
	rec := record{tombstone: tombstone, sub: sub}
	if !tombstone {
		rec.create, rec.version, rec.lease, rec.value = kv.CreateRevision, kv.Version, kv.Lease, kv.Value
	}
	c := im.chunk
	v := importVersion{main: main, sub: sub, tombstone: tombstone}
	start := len(c.arena)
	c.arena = versionKey(c.arena, kv.Key, main)
	v.key = span{start, len(c.arena) - start}
	start = len(c.arena)
	c.arena = rec.append(c.arena)
	v.rec = span{start, len(c.arena) - start}
	c.versions = append(c.versions, v)
	im.live += int64(v.key.len + v.rec.len)
	if main >= im.histFrom {
		im.live += int64(17 + 1 + len(kv.Key)) // its history entry
	}
	im.stats.Versions++
	if tombstone {
		im.stats.Tombstones++
	}
	return nil
}

// AddLease writes a lease granted for ttl seconds, with the remaining TTL
// of its last checkpoint (0: none; see LeaseRecord), which a member
// started on the result gives it when promoted, as etcd does.
func (im *Importer) AddLease(id, ttl, remaining int64) error {
	if id == 0 || ttl < 0 {
		return fmt.Errorf("storeactor: import: invalid lease %d (TTL %d)", id, ttl)
	}
	im.leases[id] = struct{}{}
	im.stats.Leases++
	if remaining > 0 {
		im.stats.Checkpointed++
	}
	return im.set(leaseKey(id), encodeLease(ttl, remaining))
}

// AddUser writes a user record (its password a bcrypt hash, as etcd's).
func (im *Importer) AddUser(u *authpb.User) error {
	if len(u.Name) == 0 {
		return fmt.Errorf("storeactor: import: user with an empty name")
	}
	im.stats.Users++
	return im.setProto(userKey(string(u.Name)), u)
}

// AddRole writes a role record.
func (im *Importer) AddRole(r *authpb.Role) error {
	if len(r.Name) == 0 {
		return fmt.Errorf("storeactor: import: role with an empty name")
	}
	im.stats.Roles++
	return im.setProto(roleKey(string(r.Name)), r)
}

func (im *Importer) setProto(key []byte, m proto.Message) error {
	v, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return im.set(key, v)
}

func (im *Importer) set(k, v []byte) error {
	if err := im.b.Set(k, v, nil); err != nil {
		return err
	}
	if im.b.Len() < importBatchBytes {
		return nil
	}
	return im.commit()
}

func (im *Importer) commit() error {
	if err := im.b.Commit(pebble.NoSync); err != nil {
		return err
	}
	im.b.Reset()
	return nil
}

// Finish ingests the last chunk, attaches live keys to their leases,
// records st, has extra (if set) write what the DB holds besides the
// store (a new member's raft state and identity), and flushes the DB,
// which stays open until Close. progress, if set, is told how many keys
// the last pass has gone through.
func (im *Importer) Finish(st ImportState, progress func(keys int64), extra func(b *pebble.Batch) error) (ImportStats, error) {
	if err := errors.Join(im.handOff(), im.stop()); err != nil {
		return im.stats, err
	}
	if err := im.attach(progress); err != nil {
		return im.stats, err
	}
	var applied [16]byte
	binary.BigEndian.PutUint64(applied[:8], st.Applied)
	binary.BigEndian.PutUint64(applied[8:], st.AppliedTerm)
	enabled := []byte{0}
	if st.AuthEnabled {
		enabled[0] = 1
	}
	sets := [][2][]byte{
		{metaRev, binary.BigEndian.AppendUint64(nil, uint64(max(st.Rev, 1)))},
		{metaApplied, applied[:]},
		{metaLive, binary.BigEndian.AppendUint64(nil, uint64(im.live))},
		{metaAuthEnabled, enabled},
	}
	if st.AuthRev > 0 {
		sets = append(sets, [2][]byte{metaAuthRev, binary.BigEndian.AppendUint64(nil, st.AuthRev)})
	}
	if st.CompactRev >= 0 {
		sets = append(sets, [2][]byte{metaCompact, binary.BigEndian.AppendUint64(nil, uint64(st.CompactRev))})
	}
	if st.CompactDone >= 0 {
		sets = append(sets, [2][]byte{metaCompactDone, binary.BigEndian.AppendUint64(nil, uint64(st.CompactDone))})
	}
	for _, kv := range sets {
		if err := im.set(kv[0], kv[1]); err != nil {
			return im.stats, err
		}
	}
	if err := im.commit(); err != nil {
		return im.stats, err
	}
	if extra != nil {
		if err := extra(im.b); err != nil {
			return im.stats, err
		}
		if err := im.commit(); err != nil {
			return im.stats, err
		}
	}
	if err := syncTables(im.dbDir); err != nil {
		return im.stats, err
	}
	return im.stats, im.db.Flush()
}

// attach walks the newest-version entries, counting the live keys and
// attaching those that name an existing lease to it.
func (im *Importer) attach(progress func(keys int64)) error {
	it, err := im.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixLatest}, UpperBound: latestSpaceUpper})
	if err != nil {
		return err
	}
	defer it.Close()
	var n int64
	var key []byte
	for ok := it.First(); ok; ok = it.Next() {
		if n++; progress != nil && n%4096 == 0 {
			progress(n)
		}
		v := it.Value()
		if len(v) < 9 {
			return fmt.Errorf("storeactor: import: newest version of %q: %w", decodeUserKey(it.Key()[1:]), errCorruptRecord)
		}
		rec, err := decodeRecord(v[8:])
		if err != nil {
			return err
		}
		if rec.tombstone {
			continue
		}
		im.stats.Keys++
		if rec.lease == 0 {
			continue
		}
		if _, ok := im.leases[rec.lease]; !ok {
			im.stats.Unattached++
			continue
		}
		im.stats.Attached++
		key = append(append(key[:0], attachPrefix(rec.lease)...), it.Key()[1:]...)
		if err := im.set(key, nil); err != nil {
			return err
		}
	}
	if progress != nil {
		progress(n)
	}
	return it.Error()
}

// Close closes the DB (again: nothing); after a failed import, the caller
// removes it.
func (im *Importer) Close() error {
	if im.closed {
		return nil
	}
	im.closed = true
	_ = im.stop() // a failed import's writer error is already known
	return errors.Join(im.b.Close(), im.db.Close())
}

package storeactor

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/authpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// Importer writes into an empty DB the store key space of another MVCC
// store's state — every version it still holds, its leases, users and
// roles, its revision and compaction point — as the Store would hold it
// had it applied the same history and compacted where the source did
// (`metastoreutl migrate from-etcd`). It streams: versions go to pebble in
// bounded batches, and the newest-version entries are derived afterwards
// from pebble, so memory does not grow with the number of keys (only with
// the number of leases).
//
// Invariants of the result, as for a store that applied the history: each
// version is a 'k' entry; every key with a 'k' entry has an 'l' entry
// repeating its newest version; a history ('h') entry exists for every
// version at or above the history floor (see NewImporter); live keys
// naming an existing lease are attached to it.
type Importer struct {
	db       *pebble.DB
	b        *pebble.Batch
	histFrom int64
	leases   map[int64]struct{}
	last     [2]int64 // main, sub of the last version added
	live     int64    // see View.LiveBytes
	stats    ImportStats
	key, buf []byte
}

// ImportStats counts what an Importer wrote.
type ImportStats struct {
	Versions   int64 // versions written, tombstones included
	Tombstones int64
	Keys       int64 // keys whose newest version is live (not deleted)
	Leases     int64
	Attached   int64 // live keys attached to a lease
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

// ImportOptions are the pebble options for a DB an Importer fills: the
// store's, without a WAL (Finish flushes; a failed import is discarded
// whole, so nothing needs replaying).
func ImportOptions() *pebble.Options {
	opts := PebbleOptions()
	opts.DisableWAL = true
	return opts
}

// importBatchBytes bounds a batch before it is committed.
const importBatchBytes = 4 << 20

// NewImporter starts an import into db, which must hold no store keys.
// Versions at revisions >= historyFrom get history entries (watch
// events); those below are the newest versions a compaction kept, which
// the store keeps without history. For a source compacted at C whose
// physical compaction finished at F (<= C), historyFrom is F (0 if it
// never compacted): the Store resumes a compaction from F to C as it
// does after a restart.
func NewImporter(db *pebble.DB, historyFrom int64) (*Importer, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixAttach}, UpperBound: []byte{prefixAlarm + 1}})
	if err != nil {
		return nil, err
	}
	nonEmpty := it.First()
	if err := it.Close(); err != nil {
		return nil, err
	}
	if nonEmpty {
		return nil, fmt.Errorf("storeactor: import into a DB that holds a store")
	}
	return &Importer{db: db, b: db.NewBatch(), histFrom: historyFrom, leases: map[int64]struct{}{}}, nil
}

// AddVersion writes one version: kv at kv.ModRevision and sub revision
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
	im.last = [2]int64{main, sub}
	rec := record{tombstone: tombstone, sub: sub}
	if !tombstone {
		rec.create, rec.version, rec.lease, rec.value = kv.CreateRevision, kv.Version, kv.Lease, kv.Value
	}
	im.buf = rec.append(im.buf[:0])
	im.key = versionKey(im.key[:0], kv.Key, main)
	if err := im.set(im.key, im.buf); err != nil {
		return err
	}
	im.live += int64(len(im.key) + len(im.buf))
	im.stats.Versions++
	if tombstone {
		im.stats.Tombstones++
	}
	if main < im.histFrom {
		return nil
	}
	flag := byte(0)
	if tombstone {
		flag = flagTombstone
	}
	im.buf = append(append(im.buf[:0], flag), kv.Key...)
	im.key = historyKey(im.key[:0], main, sub)
	im.live += int64(len(im.key) + len(im.buf))
	return im.set(im.key, im.buf)
}

// AddLease writes a lease granted for ttl seconds.
func (im *Importer) AddLease(id, ttl int64) error {
	if id == 0 || ttl < 0 {
		return fmt.Errorf("storeactor: import: invalid lease %d (TTL %d)", id, ttl)
	}
	im.leases[id] = struct{}{}
	im.stats.Leases++
	return im.set(leaseKey(id), binary.BigEndian.AppendUint64(nil, uint64(ttl)))
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

// Finish derives each key's newest-version entry and lease attachment
// from the versions written, records st, and flushes the DB. progress,
// if set, is told how many versions it has gone through.
func (im *Importer) Finish(st ImportState, progress func(done int64)) (ImportStats, error) {
	if err := im.commit(); err != nil {
		return im.stats, err
	}
	if err := im.deriveLatest(progress); err != nil {
		return im.stats, err
	}
	var applied [16]byte
	binary.BigEndian.PutUint64(applied[:8], st.Applied)
	binary.BigEndian.PutUint64(applied[8:], st.AppliedTerm)
	sets := [][2][]byte{
		{metaRev, binary.BigEndian.AppendUint64(nil, uint64(max(st.Rev, 1)))},
		{metaApplied, applied[:]},
		{metaLive, binary.BigEndian.AppendUint64(nil, uint64(im.live))},
		{metaAuthEnabled, []byte{0}},
	}
	if st.AuthEnabled {
		sets[3][1] = []byte{1}
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
	return im.stats, im.db.Flush()
}

// deriveLatest walks the versions written — each key's newest first — and
// writes each key's 'l' entry and, for a live newest version, its lease
// attachment.
func (im *Importer) deriveLatest(progress func(done int64)) error {
	it, err := im.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixKey}, UpperBound: []byte{prefixKey + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	var prev []byte
	var done int64
	for ok := it.First(); ok; ok = it.Next() {
		done++
		if progress != nil && done%4096 == 0 {
			progress(done)
		}
		p, main := splitVersionKey(it.Key())
		if bytes.Equal(p, prev) {
			continue // an older version
		}
		prev = append(prev[:0], p...)
		rec, err := decodeRecord(it.Value())
		if err != nil {
			return fmt.Errorf("storeactor: import: version %d of %q: %w", main, decodeUserKey(p[1:]), err)
		}
		key := decodeUserKey(p[1:])
		im.buf = appendLatest(im.buf[:0], main, &rec)
		im.key = latestKey(im.key[:0], key)
		if err := im.set(im.key, im.buf); err != nil {
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
		im.key = appendEncodedKey(append(im.key[:0], attachPrefix(rec.lease)...), key)
		if err := im.set(im.key, nil); err != nil {
			return err
		}
	}
	if progress != nil {
		progress(done)
	}
	return it.Error()
}

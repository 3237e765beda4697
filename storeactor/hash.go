package storeactor

import (
	"encoding/binary"
	"hash/crc32"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// KVHash is a hash of the MVCC key space as of a revision.
type KVHash struct {
	Hash            uint32
	Revision        int64 // the revision hashed
	CompactRevision int64 // the compaction point it was taken under (-1: never)
	CurrentRevision int64 // the store's revision when it was taken
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// metaHashCompacted is the sum of versionHash over every version physical
// compaction has deleted, written in the batch that deletes them.
var metaHashCompacted = []byte("mhash_compacted")

// HashKV hashes every version written up to rev (0: the current
// revision), as etcd's HashKV hashes the versions of its key bucket: the
// sum of each version's CRC-32C (key and record), those compaction has
// deleted included, through the sum recorded as it deleted them. So the
// hash of a revision is a function of the applied history alone: the same
// before a compaction and after it (etcd answers a hash at its compaction
// revision from one it took while compacting, for the same reason), on
// every member, whatever its physical compaction progress, and on a member
// that got its data from a snapshot. A revision below the compaction point
// is refused, as in etcd. Values are not comparable with etcd's.
//
// Differences: etcd leaves out of a later revision's hash the versions a
// compaction removed, so that hash changes with a compaction; this one
// does not. And etcd's hash at its compaction revision reports the
// previous compaction point as CompactRevision; this reports the current
// one.
func (r *Reader) HashKV(rev int64) (KVHash, error) {
	defer func(start time.Time) { hashRevSec.Observe(time.Since(start).Seconds()) }(time.Now())
	for {
		seq := r.view.readBegin()
		v := r.view.Load()
		switch {
		case rev > 0 && rev < v.CompactRev:
			return KVHash{}, rpctypes.ErrGRPCCompacted
		case rev > v.Rev:
			return KVHash{}, rpctypes.ErrGRPCFutureRev
		}
		at := rev
		if at == 0 {
			at = v.Rev
		}
		h, compactRev, err := hashVersions(r.db, at)
		if !r.view.readValid(seq) {
			continue // a snapshot install overlapped the walk
		}
		if err != nil {
			return KVHash{}, err
		}
		if at < compactRev {
			// A compaction committed since the check: the deleted sum
			// now holds versions above at.
			return KVHash{}, rpctypes.ErrGRPCCompacted
		}
		return KVHash{Hash: h, Revision: at, CompactRevision: compactRev, CurrentRevision: v.Rev}, nil
	}
}

// hashVersions is HashKV's hash at rev, read from one snapshot of db with
// the compaction point it was taken under.
func hashVersions(db *pebble.DB, rev int64) (sum uint32, compactRev int64, err error) {
	snap := db.NewSnapshot()
	defer snap.Close()
	compactRev = -1
	if b, ok, err := getValue(snap, metaCompact); err != nil {
		return 0, 0, err
	} else if ok {
		compactRev = int64(binary.BigEndian.Uint64(b))
	}
	if sum, err = compactedHash(snap); err != nil {
		return 0, 0, err
	}
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixKey}, UpperBound: []byte{prefixKey + 1}})
	if err != nil {
		return 0, 0, err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if _, main := splitVersionKey(it.Key()); main <= rev {
			sum += versionHash(it.Key(), it.Value())
		}
	}
	return sum, compactRev, it.Error()
}

// versionHash is one version's share of HashKV: the CRC-32C of its key
// ('k' enc(key) ^main) and record.
func versionHash(k, v []byte) uint32 {
	return crc32.Update(crc32.Checksum(k, castagnoli), castagnoli, v)
}

// compactedHash is the recorded sum of the versions compaction deleted.
func compactedHash(db pebble.Reader) (uint32, error) {
	b, ok, err := getValue(db, metaHashCompacted)
	if err != nil || !ok {
		return 0, err
	}
	return binary.BigEndian.Uint32(b), nil
}

// recordCompacted adds sum (of versions deleted in b) to the recorded
// sum, in b.
func recordCompacted(db pebble.Reader, b *pebble.Batch, sum uint32) error {
	prev, err := compactedHash(db)
	if err != nil {
		return err
	}
	return b.Set(metaHashCompacted, binary.BigEndian.AppendUint32(nil, prev+sum), nil)
}

// Hash is Maintenance.Hash: a CRC-32C over every key and value the store
// holds (versions, newest versions, history, metadata, leases, auth,
// alarms) at one point in time, and the revision then. Like etcd's hash of
// its whole backend it includes per-member state (the applied index), so
// it is for comparing a member with itself over time, not members with
// each other (HashKV is for that). The raft log and the member identity
// are not part of it.
func (r *Reader) Hash() (uint32, int64, error) {
	defer func(start time.Time) { hashSec.Observe(time.Since(start).Seconds()) }(time.Now())
	snap := r.db.NewSnapshot()
	defer snap.Close()
	v, err := loadView(snap)
	if err != nil {
		return 0, 0, err
	}
	h := crc32.New(castagnoli)
	for _, p := range []byte{prefixAttach, prefixLease, prefixHistory, prefixKey, prefixLatest, prefixMeta, prefixRole, prefixUser, prefixAlarm} {
		it, err := snap.NewIter(&pebble.IterOptions{LowerBound: []byte{p}, UpperBound: []byte{p + 1}})
		if err != nil {
			return 0, 0, err
		}
		for ok := it.First(); ok; ok = it.Next() {
			h.Write(it.Key())
			h.Write(it.Value())
		}
		if err := it.Close(); err != nil {
			return 0, 0, err
		}
	}
	return h.Sum32(), v.Rev, nil
}

package storeactor

import (
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

// HashKV hashes every version a read at or after the compaction point can
// still see, up to rev (0: the current revision), as etcd's HashKV does:
// for each key in key order, its versions above the compaction point and
// the newest one at or below it unless that is a tombstone. It depends
// only on the applied history and the compaction revision, not on how far
// physical compaction has got, so members that applied the same log agree.
// The hash function is CRC-32C; values are not comparable with etcd's.
// One difference in the fields: at exactly its compaction revision etcd
// answers from a hash it stored while compacting, taken under the previous
// compaction point; this always hashes under the current one.
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
		h, err := hashVersions(r.db, at, v.CompactRev)
		if !r.view.readValid(seq) {
			continue // a snapshot install overlapped the walk
		}
		if err != nil {
			return KVHash{}, err
		}
		if r.view.Load().CompactRev == v.CompactRev {
			return KVHash{Hash: h, Revision: at, CompactRevision: v.CompactRev, CurrentRevision: v.Rev}, nil
		}
		// A compaction landed meanwhile and may have removed what was
		// read: hash again under the new compaction point.
	}
}

func hashVersions(db pebble.Reader, rev, compactRev int64) (uint32, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixKey}, UpperBound: []byte{prefixKey + 1}})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	h := crc32.New(castagnoli)
	var cur []byte // key prefix ('k' enc(key)) of the key being walked
	var done bool  // its version at or below the compaction point is handled
	for ok := it.First(); ok; ok = it.Next() {
		prefix, main := splitVersionKey(it.Key())
		if string(prefix) != string(cur) {
			cur, done = append(cur[:0], prefix...), false
		}
		if done || main > rev {
			continue // older than the kept version, or not yet written at rev
		}
		val := it.Value()
		if main <= compactRev {
			done = true
			if len(val) > 0 && val[0]&flagTombstone != 0 {
				continue // a tombstone at the compaction point is gone
			}
		}
		h.Write(it.Key())
		h.Write(val)
	}
	return h.Sum32(), it.Error()
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

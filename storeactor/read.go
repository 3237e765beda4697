package storeactor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/encoding/protowire"
)

// visitAt calls fn for every key in [key, end) whose version visible at rev
// is not a tombstone, in key order, until fn returns false. end == nil
// means key alone; a non-nil empty end means every key >= key (etcd turns a
// range_end of "\x00" into that before it gets here). fn gets the key's
// 'l' key (its [1:] is enc(key)), the version's main revision and record;
// all are valid only during the call.
//
// r is a pebble.Reader: the DB for concurrent reads (one iterator is one
// consistent point-in-time view), or the apply actor's indexed batch, whose
// iterators also see the batch's own writes.
func visitAt(r pebble.Reader, key, end []byte, rev int64, fn func(lkey []byte, main int64, rec []byte) bool) error {
	lower := latestKey(nil, key)
	var upper []byte
	switch {
	case end == nil:
		// One key: a point lookup, far cheaper than an iterator.
		rec, main, found, err := latest(r, key, rev, false)
		if err != nil || !found || rec.tombstone {
			return err
		}
		raw := rec.append(nil)
		fn(lower, main, raw)
		return nil
	case len(end) == 0:
		upper = latestSpaceUpper
	default:
		if bytes.Compare(key, end) >= 0 {
			return nil
		}
		upper = latestKey(nil, end)
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		v := it.Value()
		if len(v) < 9 {
			return errCorruptRecord
		}
		main, rec := int64(binary.BigEndian.Uint64(v)), v[8:]
		if main > rev {
			// Written after rev: the version visible at rev is in 'k'.
			var found bool
			if main, rec, found, err = versionAt(r, it.Key()[1:], rev); err != nil {
				return err
			} else if !found {
				continue
			}
		}
		if rec[0]&flagTombstone != 0 {
			continue
		}
		if !fn(it.Key(), main, rec) {
			break
		}
	}
	return it.Error()
}

// versionAt finds the newest version of the key encoded as enc at or below
// rev in the 'k' space. The returned record is a copy.
func versionAt(r pebble.Reader, enc []byte, rev int64) (int64, []byte, bool, error) {
	prefix := append([]byte{prefixKey}, enc...)
	lower := binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), ^uint64(rev))
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: afterKeyPrefix(nil, prefix)})
	if err != nil {
		return 0, nil, false, err
	}
	defer it.Close()
	if !it.First() {
		return 0, nil, false, it.Error()
	}
	_, main := splitVersionKey(it.Key())
	return main, append([]byte(nil), it.Value()...), true, nil
}

// errVersionGone: a version a newest-version entry points to is not in
// 'k'. Only a compaction that overtook the read removes it (the read is
// then retried or answered "compacted"); anything else is corruption.
var errVersionGone = errors.New("storeactor: version of a newest-version entry is gone")

// loadValue reads the value of key's version at main from 'k'; the result
// is a copy.
func loadValue(r pebble.Reader, key []byte, main int64) ([]byte, error) {
	v, closer, err := r.Get(versionKey(nil, key, main))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, errVersionGone
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	rec, err := decodeRecord(v)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), rec.value...), nil
}

// latest returns the newest version of key at or below rev, tombstone or
// not, and whether there is one; with its value when withValue is set (or
// when it came from 'k' anyway), else maybe without (rec.valueInK). At the
// current revision (every apply) this is one point lookup, two with the
// value.
func latest(r pebble.Reader, key []byte, rev int64, withValue bool) (rec record, main int64, found bool, err error) {
	v, closer, err := r.Get(latestKey(nil, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return rec, 0, false, nil
	}
	if err != nil {
		return rec, 0, false, err
	}
	defer closer.Close()
	if len(v) < 9 {
		return rec, 0, false, errCorruptRecord
	}
	main, raw := int64(binary.BigEndian.Uint64(v)), v[8:]
	if main > rev {
		if main, raw, found, err = versionAt(r, latestKey(nil, key)[1:], rev); err != nil || !found {
			return rec, 0, false, err
		}
	}
	rec, err = decodeRecord(raw)
	if err != nil {
		return rec, 0, false, err
	}
	if rec.valueInK && withValue {
		if rec.value, err = loadValue(r, key, main); err != nil {
			return rec, 0, false, err
		}
		rec.valueInK = false
	} else {
		rec.value = append([]byte(nil), rec.value...)
	}
	return rec, main, true, nil
}

// rangeResult is what one MVCC range read yields before etcd's filtering,
// sorting and limiting: the visible KeyValues (up to limit when limit > 0)
// and how many keys matched in all (or were read: see rangeKeys).
type rangeResult struct {
	kvs   []*mvccpb.KeyValue
	count int64
}

// Charge is told, as a range read builds its key-values, how many bytes
// their encoding in a RangeResponse takes so far (kvs of the response's
// field 2, tags and lengths included); an error stops the read and is its
// answer. The gateway charges them to its budget of bytes in flight, and
// stops a result too large to send before it is built. A read that starts
// over (a compaction or a snapshot install overtook it) counts from 0
// again. Single-key reads do not call it.
type Charge func(built int64) error

// rangeKeys reads the visible versions in [key, end) at rev. withTotal
// counts every visible key of the range, as a Range answers; without it
// the walk stops at limit keys (when limit > 0) and count is how many it
// read, as etcd's range with WithTotalCount off: a RangeStream chunk then
// costs what it returns, not a walk over the rest of the range. charge,
// when set, is told what the read builds.
func rangeKeys(r pebble.Reader, key, end []byte, rev, limit int64, countOnly, keysOnly, withTotal bool, charge Charge) (rangeResult, error) {
	if end == nil {
		return rangeOneKey(r, key, rev, countOnly, keysOnly)
	}
	var rr rangeResult
	var valueErr error
	var built int64
	values := valueReader{r: r}
	defer values.close()
	err := visitAt(r, key, end, rev, func(lkey []byte, main int64, val []byte) bool {
		full := limit > 0 && int64(len(rr.kvs)) >= limit
		if full && !withTotal {
			return false
		}
		rr.count++
		if countOnly || full {
			return true
		}
		rec, err := decodeRecord(val)
		if err != nil {
			valueErr = err
			return false
		}
		userKey := decodeUserKey(lkey[1:])
		switch {
		case keysOnly:
		case rec.valueInK:
			if rec.value, valueErr = values.load(userKey, main); valueErr != nil {
				return false
			}
		default:
			rec.value = append([]byte(nil), rec.value...) // decoded in place from the iterator's buffer
		}
		kv := rec.keyValue(userKey, main, keysOnly)
		rr.kvs = append(rr.kvs, kv)
		if charge != nil {
			built += int64(KVFieldSize(kv))
			if valueErr = charge(built); valueErr != nil {
				return false
			}
		}
		return true
	})
	if err == nil {
		err = valueErr
	}
	return rr, err
}

// KVFieldSize is what kv takes in an encoded RangeResponse: its
// encoding, and the tag and length of the kvs field holding it. It is
// proto.Size's arithmetic for KeyValue's six fields (every tag is one
// byte), several times cheaper per key; were a field added to KeyValue,
// it would still be a lower bound.
func KVFieldSize(kv *mvccpb.KeyValue) int {
	n := 0
	if len(kv.Key) > 0 {
		n += 1 + protowire.SizeBytes(len(kv.Key))
	}
	if len(kv.Value) > 0 {
		n += 1 + protowire.SizeBytes(len(kv.Value))
	}
	for _, v := range [...]int64{kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease} {
		if v != 0 {
			n += 1 + protowire.SizeVarint(uint64(v))
		}
	}
	return 1 + protowire.SizeBytes(n)
}

// rangeCounted is rangeKeys with withTotal for a range that does not read
// every key it counts: a count only, or at most limit keys. It reads what
// it returns, and takes the total from the count index (countAt) unless
// the range ended before the limit. r holds revision cur when it is not
// the DB (see countAt).
func rangeCounted(r pebble.Reader, key, end []byte, rev, cur, limit int64, countOnly, keysOnly bool, charge Charge) (rangeResult, error) {
	if countOnly {
		n, err := countAt(r, key, end, rev, cur)
		return rangeResult{count: n}, err
	}
	rr, err := rangeKeys(r, key, end, rev, limit, false, keysOnly, false, charge)
	if err != nil || int64(len(rr.kvs)) < limit {
		return rr, err // the whole range was read: count is its size
	}
	rr.count, err = countAt(r, key, end, rev, cur)
	return rr, err
}

// rangeOneKey is rangeKeys for a single key (the most common read): the
// newest version at rev from one point lookup, its value from a second
// when the read returns values, and nothing decoded or copied twice.
func rangeOneKey(r pebble.Reader, key []byte, rev int64, countOnly, keysOnly bool) (rangeResult, error) {
	rec, main, found, err := latest(r, key, rev, !countOnly && !keysOnly)
	if err != nil {
		return rangeResult{}, err
	}
	return oneKeyResult(key, rec, main, found, countOnly, keysOnly), nil
}

// oneKeyResult is the rangeResult of a single-key read that found rec at
// main (found: any version at all).
func oneKeyResult(key []byte, rec record, main int64, found, countOnly, keysOnly bool) rangeResult {
	var rr rangeResult
	if !found || rec.tombstone {
		return rr
	}
	rr.count = 1
	if !countOnly {
		rr.kvs = []*mvccpb.KeyValue{rec.keyValue(append([]byte(nil), key...), main, keysOnly)}
	}
	return rr
}

// checkRev resolves a request's revision against the store: 0 or less means
// current; above current is a future revision; below the compaction point
// has been compacted away.
func checkRev(reqRev, curRev, compactRev int64) (int64, error) {
	switch {
	case reqRev > curRev:
		return 0, rpctypes.ErrGRPCFutureRev
	case reqRev <= 0:
		return curRev, nil
	case reqRev < compactRev:
		return 0, rpctypes.ErrGRPCCompacted
	}
	return reqRev, nil
}

// executeRange answers a RangeRequest the way etcd does: read at the
// resolved revision, filter by revision bounds, sort, then apply the limit.
// The header's revision is the store's current revision, not the one read at.
// rc, when set, answers single-key reads (only for r = the DB: see readCache).
// Without withTotal the response's Count is only how many keys were read
// (at most the limit plus one; see rangeKeys). charge, when set, is told
// what a read of more than one key builds.
func executeRange(r pebble.Reader, rc *readCache, req *pb.RangeRequest, curRev, compactRev int64, withTotal bool, charge Charge) (*pb.RangeResponse, error) {
	rev, err := checkRev(req.Revision, curRev, compactRev)
	if err != nil {
		return nil, err
	}
	end := req.RangeEnd
	if len(end) == 1 && end[0] == 0 {
		end = []byte{}
	}
	keysOnly := req.KeysOnly && req.SortTarget != pb.RangeRequest_VALUE
	var rr rangeResult
	switch limit := rangeLimit(req); {
	case rc != nil && end == nil:
		rr, err = rc.rangeOneKey(r, req.Key, rev, req.CountOnly, keysOnly)
	case end != nil && withTotal && (req.CountOnly || limit > 0):
		rr, err = rangeCounted(r, req.Key, end, rev, curRev, limit, req.CountOnly, keysOnly, charge)
	default:
		rr, err = rangeKeys(r, req.Key, end, rev, limit, req.CountOnly, keysOnly, withTotal, charge)
	}
	if err != nil {
		return nil, err
	}
	filterKVs(&rr, req)
	sortKVs(rr.kvs, req)
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: curRev}, Count: rr.count}
	if req.Limit > 0 && int64(len(rr.kvs)) > req.Limit {
		rr.kvs = rr.kvs[:req.Limit]
		resp.More = true
	}
	if req.KeysOnly {
		for _, kv := range rr.kvs {
			kv.Value = nil
		}
	}
	resp.Kvs = rr.kvs
	return resp, nil
}

// rangeLimit is how many KVs to collect: all of them when results are
// re-sorted or filtered afterwards, else one more than asked so that
// "more" can be told.
func rangeLimit(r *pb.RangeRequest) int64 {
	if !isDefaultOrdering(r.SortTarget, r.SortOrder) || hasRevisionFilters(r) || r.Limit <= 0 {
		return 0
	}
	return r.Limit + 1
}

func isDefaultOrdering(t pb.RangeRequest_SortTarget, o pb.RangeRequest_SortOrder) bool {
	return o == pb.RangeRequest_NONE || (t == pb.RangeRequest_KEY && o == pb.RangeRequest_ASCEND)
}

func hasRevisionFilters(r *pb.RangeRequest) bool {
	return r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0
}

func filterKVs(rr *rangeResult, r *pb.RangeRequest) {
	if !hasRevisionFilters(r) {
		return
	}
	kept := rr.kvs[:0]
	for _, kv := range rr.kvs {
		if (r.MaxModRevision != 0 && kv.ModRevision > r.MaxModRevision) ||
			(r.MinModRevision != 0 && kv.ModRevision < r.MinModRevision) ||
			(r.MaxCreateRevision != 0 && kv.CreateRevision > r.MaxCreateRevision) ||
			(r.MinCreateRevision != 0 && kv.CreateRevision < r.MinCreateRevision) {
			continue
		}
		kept = append(kept, kv)
	}
	rr.kvs = kept
}

// sortKVs sorts like etcd: a target other than KEY with order NONE means
// ascending; KEY ascending is already the read order. It uses sort.Sort
// (not a stable sort) with the same comparisons on the same key-ordered
// input as etcd, so ties come out in the same order as etcd's.
func sortKVs(kvs []*mvccpb.KeyValue, r *pb.RangeRequest) {
	order := r.SortOrder
	if r.SortTarget != pb.RangeRequest_KEY && order == pb.RangeRequest_NONE {
		order = pb.RangeRequest_ASCEND
	}
	if isDefaultOrdering(r.SortTarget, order) {
		return
	}
	s := kvSorter{kvs: kvs}
	switch r.SortTarget {
	case pb.RangeRequest_KEY:
		s.less = func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Key, b.Key) < 0 }
	case pb.RangeRequest_VERSION:
		s.less = func(a, b *mvccpb.KeyValue) bool { return a.Version < b.Version }
	case pb.RangeRequest_CREATE:
		s.less = func(a, b *mvccpb.KeyValue) bool { return a.CreateRevision < b.CreateRevision }
	case pb.RangeRequest_MOD:
		s.less = func(a, b *mvccpb.KeyValue) bool { return a.ModRevision < b.ModRevision }
	case pb.RangeRequest_VALUE:
		s.less = func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Value, b.Value) < 0 }
	default:
		return // rejected by the gateway as an invalid sort option
	}
	if order == pb.RangeRequest_DESCEND {
		sort.Sort(sort.Reverse(s))
	} else {
		sort.Sort(s)
	}
}

type kvSorter struct {
	kvs  []*mvccpb.KeyValue
	less func(a, b *mvccpb.KeyValue) bool
}

func (s kvSorter) Len() int           { return len(s.kvs) }
func (s kvSorter) Swap(i, j int)      { s.kvs[i], s.kvs[j] = s.kvs[j], s.kvs[i] }
func (s kvSorter) Less(i, j int) bool { return s.less(s.kvs[i], s.kvs[j]) }

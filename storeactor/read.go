package storeactor

import (
	"bytes"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// visitAt calls fn for every key in [key, end) whose version visible at rev
// is not a tombstone, in key order, until fn returns false. end == nil
// means key alone; a non-nil empty end means every key >= key (etcd turns a
// range_end of "\x00" into that before it gets here).
//
// r is a pebble.Reader: the DB for concurrent reads (one iterator is one
// consistent point-in-time view), or the apply actor's indexed batch, whose
// iterators also see the batch's own writes.
func visitAt(r pebble.Reader, key, end []byte, rev int64, fn func(prefix []byte, main int64, val []byte) bool) error {
	lower := keyPrefix(nil, key)
	var upper []byte
	switch {
	case end == nil:
		upper = afterKeyPrefix(nil, lower)
	case len(end) == 0:
		upper = keySpaceUpper
	default:
		if bytes.Compare(key, end) >= 0 {
			return nil
		}
		upper = keyPrefix(nil, end)
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	defer it.Close()

	var prefix, seek []byte
	ok := it.First()
	for ok {
		// it.Key() is only valid until the iterator moves: keep a copy.
		p, main := splitVersionKey(it.Key())
		prefix = append(prefix[:0], p...)
		if main > rev {
			// Newer than rev: jump to the first version at or below rev.
			seek = append(append(seek[:0], prefix...), 0, 0, 0, 0, 0, 0, 0, 0)
			putInverted(seek[len(prefix):], rev)
			if ok = it.SeekGE(seek); !ok {
				break
			}
			p2, main2 := splitVersionKey(it.Key())
			if !bytes.Equal(p2, prefix) {
				continue // key has no version at or below rev; now at the next key
			}
			main = main2
		}
		if v := it.Value(); len(v) > 0 && v[0]&flagTombstone == 0 {
			if !fn(prefix, main, v) {
				return it.Error()
			}
		}
		// Older versions of this key follow; step over them. Most keys have
		// one or two versions, so a couple of Next calls beat a seek.
		ok = it.Next()
		for i := 0; ok && i < 2 && bytes.HasPrefix(it.Key(), prefix); i++ {
			ok = it.Next()
		}
		if ok && bytes.HasPrefix(it.Key(), prefix) {
			seek = afterKeyPrefix(seek[:0], prefix)
			ok = it.SeekGE(seek)
		}
	}
	return it.Error()
}

func putInverted(dst []byte, main int64) {
	v := ^uint64(main)
	for i := 7; i >= 0; i-- {
		dst[i] = byte(v)
		v >>= 8
	}
}

// latest returns the newest version of key at or below rev, tombstone or
// not, and whether there is one.
func latest(r pebble.Reader, key []byte, rev int64) (rec record, main int64, found bool, err error) {
	lower := versionKey(nil, key, rev)
	upper := afterKeyPrefix(nil, lower[:len(lower)-8])
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return rec, 0, false, err
	}
	defer it.Close()
	if !it.First() {
		return rec, 0, false, it.Error()
	}
	_, main = splitVersionKey(it.Key())
	rec, err = decodeRecord(it.Value())
	if err != nil {
		return rec, 0, false, err
	}
	rec.value = append([]byte(nil), rec.value...)
	return rec, main, true, nil
}

// rangeResult is what one MVCC range read yields before etcd's filtering,
// sorting and limiting: the visible KeyValues (up to limit when limit > 0)
// and how many keys matched in all.
type rangeResult struct {
	kvs   []*mvccpb.KeyValue
	count int64
}

func rangeKeys(r pebble.Reader, key, end []byte, rev, limit int64, countOnly, keysOnly bool) (rangeResult, error) {
	var rr rangeResult
	err := visitAt(r, key, end, rev, func(prefix []byte, main int64, val []byte) bool {
		rr.count++
		if countOnly || (limit > 0 && int64(len(rr.kvs)) >= limit) {
			return true
		}
		rec, err := decodeRecord(val)
		if err != nil {
			panic(err) // a corrupt record is a broken invariant, not a client error
		}
		rr.kvs = append(rr.kvs, rec.keyValue(decodeUserKey(prefix[1:]), main, keysOnly))
		return true
	})
	return rr, err
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
func executeRange(r pebble.Reader, req *pb.RangeRequest, curRev, compactRev int64) (*pb.RangeResponse, error) {
	rev, err := checkRev(req.Revision, curRev, compactRev)
	if err != nil {
		return nil, err
	}
	end := req.RangeEnd
	if len(end) == 1 && end[0] == 0 {
		end = []byte{}
	}
	rr, err := rangeKeys(r, req.Key, end, rev, rangeLimit(req), req.CountOnly, req.KeysOnly && req.SortTarget != pb.RangeRequest_VALUE)
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

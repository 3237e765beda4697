package storeactor

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// History reads the watch events of revisions from..to (to no later than
// the published revision) from the 'h' key space, in revision order, keeping
// those whose key match accepts (all when match is nil). It stops early, at
// the end of a revision, once it has looked at maxScan changes or kept
// maxBytes of keys and values, and returns the last revision it read
// completely: a caller reads on from last+1. This bounds the work and
// memory of one call however far behind a watcher is.
//
// If a compaction past from is published while it reads, the versions it
// needs may be gone: it returns rpctypes.ErrGRPCCompacted, as it does when
// from is already compacted.
func (r *Reader) History(from, to int64, maxScan, maxBytes int, match func(key []byte) bool) (evs []*mvccpb.Event, last int64, err error) {
	defer func() { r.readError("history", err) }()
	for {
		seq := r.view.readBegin()
		evs, last, err = r.history(from, to, maxScan, maxBytes, match)
		if r.view.readValid(seq) { // else a snapshot install overlapped it
			return evs, last, err
		}
	}
}

func (r *Reader) history(from, to int64, maxScan, maxBytes int, match func(key []byte) bool) (evs []*mvccpb.Event, last int64, err error) {
	if from < r.view.Load().CompactRev {
		return nil, 0, rpctypes.ErrGRPCCompacted
	}
	it, err := r.db.NewIter(&pebble.IterOptions{
		LowerBound: historyKey(nil, from, 0),
		UpperBound: historyKey(nil, to+1, 0),
	})
	if err != nil {
		return nil, 0, err
	}
	defer it.Close()
	last = to
	scanned, kept, cur := 0, 0, int64(0)
	var vk []byte
	for ok := it.First(); ok; ok = it.Next() {
		main, _ := parseHistoryKey(it.Key())
		if (scanned >= maxScan || kept >= maxBytes) && main != cur {
			last = main - 1 // stop on a revision boundary
			break
		}
		cur = main
		scanned++
		flag, key, shadowed, err := parseHistoryValue(it.Value())
		if err != nil {
			return nil, 0, err
		}
		if match != nil && !match(key) {
			continue
		}
		key = append([]byte(nil), key...)
		kept += len(key)
		if flag&flagTombstone != 0 {
			evs = append(evs, (&record{tombstone: true}).event(key, main))
			continue
		}
		if shadowed != nil {
			rec, err := decodeRecord(shadowed)
			if err != nil {
				return nil, 0, err
			}
			rec.value = append([]byte(nil), rec.value...)
			kept += len(rec.value)
			evs = append(evs, rec.event(key, main))
			continue
		}
		vk = versionKey(vk[:0], key, main)
		v, closer, err := r.db.Get(vk)
		if errors.Is(err, pebble.ErrNotFound) {
			if from < r.view.Load().CompactRev {
				return nil, 0, rpctypes.ErrGRPCCompacted
			}
			return nil, 0, fmt.Errorf("storeactor: history entry %d without its version of %q", main, key)
		}
		if err != nil {
			return nil, 0, err
		}
		rec, err := decodeRecord(v)
		if err == nil {
			rec.value = append([]byte(nil), rec.value...)
		}
		closer.Close()
		if err != nil {
			return nil, 0, err
		}
		kept += len(rec.value)
		evs = append(evs, rec.event(key, main))
	}
	if err := it.Error(); err != nil {
		return nil, 0, err
	}
	if from < r.view.Load().CompactRev {
		return nil, 0, rpctypes.ErrGRPCCompacted
	}
	return evs, last, nil
}

// PrevKV returns the version of key visible just before rev (a watch
// event's prev_kv), or nil when there was none or it is compacted away
// (etcd sends the event without it then), or why it could not be read:
// the watch must not send the event without a prev_kv it has.
func (r *Reader) PrevKV(key []byte, rev int64) (*mvccpb.KeyValue, error) {
	for {
		seq := r.view.readBegin()
		if rev-1 < r.view.Load().CompactRev {
			return nil, nil
		}
		rec, main, found, err := latest(r.db, key, rev-1, true)
		if !r.view.readValid(seq) {
			continue // a snapshot install overlapped it
		}
		switch {
		case errors.Is(err, errVersionGone) && rev-1 < r.view.Load().CompactRev:
			return nil, nil // a compaction overtook the read
		case err != nil:
			return nil, r.readError("prev-kv", err)
		case !found || rec.tombstone:
			return nil, nil
		}
		return rec.keyValue(key, main, false), nil
	}
}

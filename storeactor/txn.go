package storeactor

import (
	"encoding/binary"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// writeTxn is one etcd write transaction: every change it makes gets main
// revision beginRev+1 and the next sub revision. It reads from r and writes
// to w: for the Store both are its indexed apply batch, so later reads in
// the same txn (and later txns in the batch) see earlier writes; a
// read-only txn runs on the DB with no w.
//
// A read that fails for want of the store (pebble's I/O, a corrupt
// record), not because of the request, is readFailed: a read-only txn
// returns it, the apply batch panics. Puts and deletes run only in the
// apply batch, and panic on such a read directly.
type writeTxn struct {
	r        pebble.Reader
	w        pebble.Writer
	beginRev int64
	changes  int64
	buf, key []byte           // scratch for the values and keys write sets
	events   *[]*mvccpb.Event // when set, every change is appended as a watch event
	cache    *latestCache     // the Store's; nil for read-only txns
	written  *[][]byte        // when set, every key written is appended (see readCache)
	counts   *countWriter     // the apply batch's count index (counts.go); nil for read-only txns
	readErr  error            // the first read error of a read-only txn's ranges (see readFailed)
	charge   Charge           // a read-only txn's: told what its ranges build (Reader.TxnCharged)
	charged  int64            // what the txn's ranges before the current one built
	live     int64            // bytes of versions and history written (see View.LiveBytes)
	keys     int64            // change in the number of live keys (see View.Keys)
	ops      mvccOps          // what etcd's mvcc metrics count of it

	// Filled by checkTxn for the ops on the path the txn takes.
	pathRevs []int64    // revisions its ranges read at (0: current)
	pathDels []keyRange // its deletes, in order
}

// readFailed handles err, a read that failed for want of the store. A
// read-only txn (no w: Reader.Txn on the DB) gets it back to return: the
// Reader runs the txn again when a compaction overtook it
// (errVersionGone), else fails the request and the member serves on. In
// the apply batch it panics: an answer with the error would skip a txn
// the other members apply, so the Store restarts and replays the entry
// instead.
func (tw *writeTxn) readFailed(err error) error {
	if tw.w != nil {
		panic(err)
	}
	return err
}

// rev is the revision this txn's reads see: its own writes included.
func (tw *writeTxn) rev() int64 {
	if tw.changes > 0 {
		return tw.beginRev + 1
	}
	return tw.beginRev
}

func (tw *writeTxn) put(key, value []byte, lease int64) {
	main := tw.beginRev + 1
	prev := tw.latestMeta(key)
	rec := record{sub: tw.changes, create: main, version: 1, lease: lease, value: value}
	var prevLease int64
	if !prev.tombstone {
		rec.create, rec.version, prevLease = prev.create, prev.version+1, prev.lease
	} else {
		tw.keys++
		if tw.counts != nil {
			tw.counts.added(key)
		}
	}
	tw.write(key, main, &rec)
	tw.attach(key, prevLease, lease)
}

// latestMeta is key's newest version as the txn sees it; a key that has
// none is reported as a tombstone (no live key), which is how the cache
// remembers it too.
func (tw *writeTxn) latestMeta(key []byte) latestMeta {
	if tw.cache != nil {
		if m, ok := tw.cache.get(key); ok {
			return m
		}
	}
	rec, main, found, err := latest(tw.r, key, tw.rev(), false)
	must(err)
	m := latestMeta{tombstone: true}
	if found {
		m = latestMeta{main: main, create: rec.create, version: rec.version, lease: rec.lease, tombstone: rec.tombstone}
	}
	if tw.cache != nil {
		tw.cache.set(key, m)
	}
	return m
}

// deleteRange writes a tombstone for every live key in [key, end) and
// returns how many there were.
func (tw *writeTxn) deleteRange(key, end []byte) int64 {
	main := tw.beginRev + 1
	keys := tw.victims(key, end, main)
	for _, k := range keys {
		if k.sub >= 0 {
			tw.shadow(k.key, main, k.sub)
		}
		tw.write(k.key, main, &record{tombstone: true, sub: tw.changes})
		tw.attach(k.key, k.lease, 0)
		if tw.counts != nil {
			tw.counts.removed(k.key)
		}
	}
	tw.keys -= int64(len(keys))
	return int64(len(keys))
}

// victim is a live key a delete replaces with a tombstone.
type victim struct {
	key   []byte
	lease int64
	sub   int64 // of the live version, if this txn (writing at main) wrote it (-1: it did not)
}

// victims are the live keys in [key, end) as this txn sees them.
func (tw *writeTxn) victims(key, end []byte, main int64) []victim {
	if end == nil && tw.cache != nil {
		// One key in the apply batch (Kubernetes' deletes, after a
		// compare that left the key cached): what the cache knows says
		// whether it is live and its lease. A version this txn wrote
		// needs its sub, which the cache does not keep: visitAt reads it.
		m := tw.latestMeta(key)
		if m.tombstone {
			return nil
		}
		if m.main != main {
			return []victim{{key, m.lease, -1}}
		}
	}
	var keys []victim
	if err := visitAt(tw.r, key, end, tw.rev(), func(lkey []byte, at int64, raw []byte) bool {
		rec, err := decodeRecord(raw)
		must(err)
		v := victim{decodeUserKey(lkey[1:]), rec.lease, -1}
		if at == main {
			v.sub = rec.sub
		}
		keys = append(keys, v)
		return true
	}); err != nil {
		panic(err)
	}
	return keys
}

// shadow keeps the version of key this txn wrote at sub, which its
// tombstone is about to replace in 'k', in its history entry (see
// flagShadowed).
func (tw *writeTxn) shadow(key []byte, main, sub int64) {
	v, closer, err := tw.r.Get(versionKey(nil, key, main))
	must(err)
	h := appendShadowedHistory(nil, key, false, v)
	closer.Close()
	// The record moves from 'k' to 'h': live bytes, which counted it
	// with its 'k' entry, stay as they are (as an import of the same
	// history counts them).
	must(tw.w.Set(historyKey(nil, main, sub), h, nil))
}

func (tw *writeTxn) write(key []byte, main int64, rec *record) {
	// pebble copies keys and values into the batch: one scratch buffer
	// (tw.key) serves every key written, tw.buf every value.
	tw.buf = rec.append(tw.buf[:0])
	tw.key = versionKey(tw.key[:0], key, main)
	must(tw.w.Set(tw.key, tw.buf, nil))
	tw.live += int64(len(tw.key) + len(tw.buf))
	tw.buf = appendLatest(tw.buf[:0], main, rec)
	tw.key = latestKey(tw.key[:0], key)
	must(tw.w.Set(tw.key, tw.buf, nil))
	if tw.written != nil {
		*tw.written = append(*tw.written, key)
	}
	if tw.cache != nil {
		tw.cache.set(key, latestMeta{main: main, create: rec.create, version: rec.version, lease: rec.lease, tombstone: rec.tombstone})
	}
	tw.buf = appendHistoryValue(tw.buf[:0], key, rec.tombstone)
	tw.key = historyKey(tw.key[:0], main, rec.sub)
	must(tw.w.Set(tw.key, tw.buf, nil))
	tw.live += int64(len(tw.key) + len(tw.buf))
	tw.changes++
	if tw.events != nil {
		*tw.events = append(*tw.events, rec.event(key, main))
	}
}

// getPrevKV reads the key a put is about to replace, when the request needs it.
func (tw *writeTxn) getPrevKV(p *pb.PutRequest) *mvccpb.KeyValue {
	if !p.PrevKv && !p.IgnoreValue && !p.IgnoreLease {
		return nil
	}
	rec, main, found, err := latest(tw.r, p.Key, tw.rev(), true)
	if err != nil {
		panic(err)
	}
	if !found || rec.tombstone {
		return nil
	}
	return rec.keyValue(p.Key, main, false)
}

func (tw *writeTxn) applyPut(p *pb.PutRequest) *pb.PutResponse {
	resp := &pb.PutResponse{Header: &pb.ResponseHeader{}}
	prev := tw.getPrevKV(p)
	val, lease := p.Value, p.Lease
	if p.IgnoreValue {
		val = prev.Value
	}
	if p.IgnoreLease {
		lease = prev.Lease
	}
	if p.PrevKv && prev != nil {
		resp.PrevKv = prev
	}
	if p.PrevKv || p.IgnoreValue || p.IgnoreLease {
		tw.ops.rng(1) // etcd reads the previous version through its txn
	}
	tw.ops.put(int64(len(p.Key) + len(val)))
	tw.put(p.Key, val, lease)
	resp.Header.Revision = tw.beginRev + 1
	return resp
}

func (tw *writeTxn) applyDeleteRange(d *pb.DeleteRangeRequest) *pb.DeleteRangeResponse {
	resp := &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{}}
	end := mkGteRange(d.RangeEnd)
	tw.ops.del(1)
	if d.PrevKv {
		tw.ops.rng(1)
		rr, err := rangeKeys(tw.r, d.Key, end, tw.rev(), 0, false, false, true, nil)
		if err != nil {
			panic(err)
		}
		resp.PrevKvs = rr.kvs
	}
	resp.Deleted = tw.deleteRange(d.Key, end)
	resp.Header.Revision = tw.rev()
	return resp
}

func mkGteRange(end []byte) []byte {
	if len(end) == 1 && end[0] == 0 {
		return []byte{}
	}
	return end
}

// appendLatest appends key's newest-version ('l') entry for its version
// rec at main: main, then the record without its value (see record): the
// value is written once, in 'k'.
func appendLatest(dst []byte, main int64, rec *record) []byte {
	lrec := *rec
	lrec.value, lrec.valueInK = nil, !rec.tombstone
	return lrec.append(binary.BigEndian.AppendUint64(dst, uint64(main)))
}

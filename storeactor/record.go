package storeactor

import (
	"encoding/binary"
	"errors"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// record is one version of a key as stored under its 'k' key. The key and
// main revision are in the pebble key; the record holds the rest of an
// mvccpb.KeyValue. A tombstone marks a deletion: the key has no value at
// that revision, and a later put starts again at version 1.
//
// Encoding: flags(1) sub(uvarint) create(uvarint) version(uvarint)
// lease(varint) value(rest).
//
// A newest-version ('l') entry stores the record without its value, with
// flagValueInK set: the value is read from the version's 'k' entry when a
// read returns it. So counting and keys-only reads walk small entries, and
// a put writes its value once. ('l' entries written before this carry
// their value and no flag; both are read.)
type record struct {
	tombstone bool
	valueInK  bool // the value is in the version's 'k' entry, not here
	sub       int64
	create    int64
	version   int64
	lease     int64
	value     []byte
}

const (
	flagTombstone = 1
	flagValueInK  = 2
)

var errCorruptRecord = errors.New("storeactor: corrupt record")

func (r *record) append(dst []byte) []byte {
	var flags byte
	if r.tombstone {
		flags |= flagTombstone
	}
	if r.valueInK {
		flags |= flagValueInK
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(r.sub))
	dst = binary.AppendUvarint(dst, uint64(r.create))
	dst = binary.AppendUvarint(dst, uint64(r.version))
	dst = binary.AppendVarint(dst, r.lease)
	return append(dst, r.value...)
}

// decodeRecord parses b. The returned value aliases b.
func decodeRecord(b []byte) (record, error) {
	var r record
	if len(b) < 1 {
		return r, errCorruptRecord
	}
	r.tombstone = b[0]&flagTombstone != 0
	r.valueInK = b[0]&flagValueInK != 0
	b = b[1:]
	var vals [3]uint64
	for i := range vals {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return r, errCorruptRecord
		}
		vals[i] = v
		b = b[n:]
	}
	r.sub, r.create, r.version = int64(vals[0]), int64(vals[1]), int64(vals[2])
	l, n := binary.Varint(b)
	if n <= 0 {
		return r, errCorruptRecord
	}
	r.lease = l
	r.value = b[n:]
	return r, nil
}

// keyValue builds the client-facing KeyValue. It keeps r.value as it is:
// the caller's record must own its value (latest and loadValue return
// copies; a record decoded in place from pebble's buffer does not).
// keysOnly is etcd's fast keys-only read, which answers from its index
// alone: no value and no lease.
func (r *record) keyValue(key []byte, main int64, keysOnly bool) *mvccpb.KeyValue {
	kv := &mvccpb.KeyValue{
		Key:            key,
		CreateRevision: r.create,
		ModRevision:    main,
		Version:        r.version,
	}
	if !keysOnly {
		kv.Lease = r.lease
		if len(r.value) > 0 {
			kv.Value = r.value
		}
	}
	return kv
}

// event is the watch event of this version of key, written at main. As in
// etcd, a delete event's KeyValue holds only the key and mod revision. The
// value is not copied: callers own rec's value.
func (r *record) event(key []byte, main int64) *mvccpb.Event {
	if r.tombstone {
		return &mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: key, ModRevision: main}}
	}
	return &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: &mvccpb.KeyValue{
		Key: key, CreateRevision: r.create, ModRevision: main, Version: r.version, Lease: r.lease, Value: r.value,
	}}
}

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

// ExportState is what a store holds besides its versions, for writing it
// out in another store's format (`metastoreutl snapshot export
// --to-etcd`). Leases, users and roles are few next to keys: they are
// read whole.
type ExportState struct {
	View        View // revision, compaction point and progress, applied index and term
	AuthEnabled bool
	AuthRev     uint64
	Leases      []LeaseRecord
	Users       []*authpb.User
	Roles       []*authpb.Role
}

// ReadExportState reads the store's state from db (a DB no Store is
// writing, or a snapshot of one).
func ReadExportState(db pebble.Reader) (ExportState, error) {
	var st ExportState
	var err error
	if st.View, err = loadView(db); err != nil {
		return st, err
	}
	if st.Leases, err = listLeases(db); err != nil {
		return st, err
	}
	if st.Users, err = listProtos(db, prefixUser, func() *authpb.User { return new(authpb.User) }); err != nil {
		return st, err
	}
	if st.Roles, err = listProtos(db, prefixRole, func() *authpb.Role { return new(authpb.Role) }); err != nil {
		return st, err
	}
	v, ok, err := getValue(db, metaAuthEnabled)
	if err != nil {
		return st, err
	}
	st.AuthEnabled = ok && len(v) == 1 && v[0] == 1
	st.AuthRev = 1
	if v, ok, err = getValue(db, metaAuthRev); err != nil {
		return st, err
	} else if ok {
		if len(v) != 8 {
			return st, errCorruptRecord
		}
		st.AuthRev = binary.BigEndian.Uint64(v)
	}
	return st, nil
}

// listProtos decodes every record under a one-byte prefix, in key order.
func listProtos[T proto.Message](r pebble.Reader, prefix byte, newT func() T) ([]T, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []T
	for ok := it.First(); ok; ok = it.Next() {
		m := newT()
		if err := proto.Unmarshal(it.Value(), m); err != nil {
			return nil, fmt.Errorf("%w: %q: %v", errCorruptRecord, it.Key(), err)
		}
		out = append(out, m)
	}
	return out, it.Error()
}

// ExportVersions calls fn with every version the store holds, in key
// order and, for each key, newest first: the KeyValue a read at its
// revision returns (a tombstone's holds only the key and mod revision),
// its sub revision, and whether it is a tombstone. Shadowed versions
// (flagShadowed), which only their history entries hold, come after the
// version that shadows them. fn must not keep kv.
func ExportVersions(db pebble.Reader, fn func(kv *mvccpb.KeyValue, sub int64, tombstone bool) error) error {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixKey}, UpperBound: []byte{prefixKey + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	hist, err := db.NewIter(&pebble.IterOptions{LowerBound: historySpaceLow, UpperBound: historySpaceHigh})
	if err != nil {
		return err
	}
	defer hist.Close()
	var prefix, key []byte
	for ok := it.First(); ok; ok = it.Next() {
		p, main := splitVersionKey(it.Key())
		if string(p) != string(prefix) {
			prefix = append(prefix[:0], p...)
			key = decodeUserKey(p[1:])
		}
		rec, err := decodeRecord(it.Value())
		if err != nil {
			return fmt.Errorf("version %d of %q: %w", main, key, err)
		}
		kv := rec.keyValue(key, main, false)
		if rec.tombstone {
			kv = &mvccpb.KeyValue{Key: key, ModRevision: main}
		}
		if err := fn(kv, rec.sub, rec.tombstone); err != nil {
			return err
		}
		if rec.sub > 0 {
			if err := exportShadowed(hist, key, main, rec.sub, fn); err != nil {
				return err
			}
		}
	}
	return it.Error()
}

// exportShadowed calls fn with the versions of key at main below sub that
// the history holds as shadowed, newest first.
func exportShadowed(hist *pebble.Iterator, key []byte, main, sub int64, fn func(kv *mvccpb.KeyValue, sub int64, tombstone bool) error) error {
	lo := historyKey(nil, main, 0)
	for ok := hist.SeekGE(historyKey(nil, main, sub)); ok && bytes.Compare(hist.Key(), lo) >= 0; ok = hist.Prev() {
		_, s := parseHistoryKey(hist.Key())
		if s >= sub {
			continue
		}
		flag, k, recBytes, err := parseHistoryValue(hist.Value())
		if err != nil {
			return err
		}
		if flag&flagShadowed == 0 || !bytes.Equal(k, key) {
			continue
		}
		rec, err := decodeRecord(recBytes)
		if err != nil {
			return fmt.Errorf("shadowed version %d.%d of %q: %w", main, s, key, err)
		}
		kv := rec.keyValue(key, main, false)
		if rec.tombstone {
			kv = &mvccpb.KeyValue{Key: key, ModRevision: main}
		}
		if err := fn(kv, rec.sub, rec.tombstone); err != nil {
			return err
		}
	}
	return hist.Error()
}

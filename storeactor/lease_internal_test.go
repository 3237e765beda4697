package storeactor

import (
	"encoding/binary"
	"errors"
	"testing"
)

// A lease record without a checkpoint keeps the 8-byte form every earlier
// version wrote (a store written by one reads in the next, and back); a
// checkpoint adds the remaining TTL after the TTL.
func TestLeaseRecordForms(t *testing.T) {
	if v := encodeLease(60, 0); len(v) != 8 || binary.BigEndian.Uint64(v) != 60 {
		t.Fatalf("record without a checkpoint = %x, want 8 bytes", v)
	}
	db, err := OpenPebble("/db", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	old := binary.BigEndian.AppendUint64(nil, 30) // as written before checkpoints
	for id, v := range map[int64][]byte{1: old, 2: encodeLease(60, 45)} {
		if err := db.Set(leaseKey(id), v, nil); err != nil {
			t.Fatal(err)
		}
	}
	r, err := NewReader(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []LeaseRecord{{ID: 1, TTL: 30}, {ID: 2, TTL: 60, Remaining: 45}} {
		if got, ok, err := r.Lease(want.ID); err != nil || !ok || got != want {
			t.Errorf("lease %d = %+v %v %v, want %+v", want.ID, got, ok, err, want)
		}
	}
	if ls, err := r.Leases(); err != nil || len(ls) != 2 || ls[0] != (LeaseRecord{ID: 1, TTL: 30}) || ls[1] != (LeaseRecord{ID: 2, TTL: 60, Remaining: 45}) {
		t.Errorf("leases = %+v %v", ls, err)
	}
	if _, err := decodeLease(3, make([]byte, 12)); !errors.Is(err, errCorruptRecord) {
		t.Errorf("a 12-byte record: %v, want %v", err, errCorruptRecord)
	}
}

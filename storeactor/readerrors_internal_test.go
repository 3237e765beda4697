package storeactor

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// corruptDB is an in-memory DB where key "bad" has a newest-version entry
// (revision 1) whose record is cut after its flags.
func corruptDB(t *testing.T) *pebble.DB {
	t.Helper()
	db, err := OpenPebble("/db", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Set(latestKey(nil, []byte("bad")), append(binary.BigEndian.AppendUint64(nil, 1), 0), nil); err != nil {
		t.Fatal(err)
	}
	return db
}

// compareBad holds when every key in [a, z) has a version above 0.
var compareBad = &pb.Compare{Key: []byte("a"), RangeEnd: []byte("z"),
	Target: pb.Compare_VERSION, Result: pb.Compare_GREATER, TargetUnion: &pb.Compare_Version{}}

// A corrupt record fails the reads that decode it with errCorruptRecord,
// Range and read-only Txn alike (a compare that reads it too), instead of
// panicking on the request's goroutine; reads that do not need it go on.
func TestCorruptRecordFailsTheRead(t *testing.T) {
	db := corruptDB(t)
	r, err := NewReader(db)
	if err != nil {
		t.Fatal(err)
	}
	get := func(key, end string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(key), RangeEnd: []byte(end)}}}
	}
	for name, read := range map[string]func() error{
		"range": func() error { _, err := r.Range(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z")}); return err },
		"txn that ranges": func() error {
			_, err := r.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{get("a", "z")}})
			return err
		},
		"txn that compares": func() error {
			_, err := r.Txn(&pb.TxnRequest{Compare: []*pb.Compare{compareBad}})
			return err
		},
	} {
		if err := read(); !errors.Is(err, errCorruptRecord) {
			t.Errorf("%s over a corrupt record: err = %v, want %v", name, err, errCorruptRecord)
		}
	}
	resp, err := r.Range(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), CountOnly: true})
	if err != nil || resp.Count != 1 {
		t.Fatalf("count over the corrupt record (needs no record): %v %v", resp, err)
	}
}

// In the apply batch, a compare that cannot read (a disk read error)
// panics, so that the Store restarts and replays the entry, rather than
// take the failure branch: the other members, which can read, would take
// the success branch.
func TestApplyCompareReadFailurePanics(t *testing.T) {
	faults := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpFileRead || op.Kind == errorfs.OpFileReadAt {
			return errorfs.ErrInjected
		}
		return nil
	})}
	db, err := OpenPebbleFS(errorfs.Wrap(vfs.NewMem(), faults), "/db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Set(latestKey(nil, []byte("k")), nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	b := db.NewIndexedBatch()
	defer b.Close()
	tw := &writeTxn{r: b, w: b, beginRev: 1}
	faults.On()
	defer func() {
		faults.Off()
		if err, _ := recover().(error); !errors.Is(err, errorfs.ErrInjected) {
			t.Fatalf("panic %v, want the injected error", err)
		}
		if tw.changes != 0 {
			t.Fatalf("%d changes written by a txn whose compare failed to read", tw.changes)
		}
	}()
	resp, err := tw.applyTxn(&pb.TxnRequest{Compare: []*pb.Compare{compareBad},
		Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("x")}}}}}, -1)
	t.Fatalf("applied: succeeded %v, %v", resp.GetSucceeded(), err)
}

// A lease record cut short fails the Reader's reads of it with
// errCorruptRecord (a request's, or the lessor's load) instead of
// panicking on the caller's goroutine.
func TestCorruptLeaseRecordFailsTheRead(t *testing.T) {
	db, err := OpenPebble("/db", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Set(leaseKey(7), []byte{0, 0, 1}, nil); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(db)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Lease(7); !errors.Is(err, errCorruptRecord) {
		t.Errorf("lease over a corrupt record: %v, want %v", err, errCorruptRecord)
	}
	if _, err := r.Leases(); !errors.Is(err, errCorruptRecord) {
		t.Errorf("leases over a corrupt record: %v, want %v", err, errCorruptRecord)
	}
}

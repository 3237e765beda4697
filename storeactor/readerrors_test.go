package storeactor_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
)

// sstReadErrors fails every read of an sstable while on.
func sstReadErrors() *errorfs.Toggle {
	return &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if (op.Kind == errorfs.OpFileRead || op.Kind == errorfs.OpFileReadAt) && strings.HasSuffix(op.Path, ".sst") {
			return errorfs.ErrInjected
		}
		return nil
	})}
}

// A read that pebble fails (a disk read error) fails that request with
// the error, for Range and read-only Txn alike, compares included, and is
// counted; the member goes on serving: the store applies, and the same
// reads succeed once the disk reads again.
func TestReadErrorsAreReturned(t *testing.T) {
	faults := sstReadErrors()
	db, err := storeactor.OpenPebbleFS(errorfs.Wrap(vfs.NewMem(), faults), "/db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := newHarness(t, func(c *storeactor.Config) { c.DB = db })
	h.put("a", "1")
	h.put("b", "2")
	if err := db.Flush(); err != nil { // the data now sits in sstables only
		t.Fatal(err)
	}
	reg := testkit.Registry(t)
	readErrors := func() float64 { return testkit.Gather(t, reg).Must(t, "metastore_store_read_errors_total") }

	one := &pb.RangeRequest{Key: []byte("a")}
	all := &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z")}
	getTxn := &pb.TxnRequest{Success: []*pb.RequestOp{opGet("a", "z", 0)}}
	cmpTxn := &pb.TxnRequest{
		Compare: []*pb.Compare{{Key: []byte("a"), Target: pb.Compare_VALUE, Result: pb.Compare_EQUAL,
			TargetUnion: &pb.Compare_Value{Value: []byte("1")}}},
		Success: []*pb.RequestOp{opGet("b", "", 0)},
	}
	reads := []struct {
		name string
		run  func() error
	}{
		{"range of one key", func() error { _, err := h.reader.Range(one); return err }},
		{"range of keys", func() error { _, err := h.reader.Range(all); return err }},
		{"txn that ranges", func() error { _, err := h.reader.Txn(getTxn); return err }},
		{"txn that compares", func() error { _, err := h.reader.Txn(cmpTxn); return err }},
	}

	before := readErrors()
	faults.On()
	for _, r := range reads {
		if err := r.run(); !errors.Is(err, errorfs.ErrInjected) {
			t.Errorf("%s while the disk fails: err = %v, want the injected error", r.name, err)
		}
	}
	if got := readErrors() - before; got != float64(len(reads)) {
		t.Errorf("metastore_store_read_errors_total grew by %v, want %d", got, len(reads))
	}
	faults.Off()

	h.put("c", "3")
	if got := keys(h.rng(all).Kvs); got != "a,b,c" {
		t.Fatalf("range after the fault: %s", got)
	}
	resp, err := h.reader.Txn(cmpTxn)
	if err != nil || !resp.Succeeded || kvs(resp.Responses[0].GetResponseRange().Kvs)[0] != kvAt("b", "2", 3, 3, 1) {
		t.Fatalf("txn after the fault: %v %v", resp, err)
	}
}

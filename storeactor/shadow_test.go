package storeactor_test

import (
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/storeactor"
)

// putThenDelete is the one txn that changes a key twice in one revision:
// a nested txn puts it, a later sibling deletes it (etcd's duplicate-key
// check refuses every other order).
func putThenDelete(key, value string) *pb.InternalRaftRequest {
	return txnReq(&pb.TxnRequest{Success: []*pb.RequestOp{
		opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut(key, value)}}),
		opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel(key, "")}}),
	}})
}

// The put a later delete of the same txn replaces is still an event of the
// history — a watch from before the txn sees it, then the delete, as
// etcd's watchers do — and an export still carries it.
func TestPutThenDeleteInOneTxnKeepsBothEvents(t *testing.T) {
	h := newHarness(t)
	h.put("k", "v0")
	h.must(putThenDelete("k", "v1"))
	rev := h.rev()
	evs, _, err := h.reader.History(2, rev, 100, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		got = append(got, fmt.Sprintf("%s %s=%s mod=%d create=%d ver=%d", ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision, ev.Kv.CreateRevision, ev.Kv.Version))
	}
	want := []string{
		"PUT k=v0 mod=2 create=2 ver=1",
		fmt.Sprintf("PUT k=v1 mod=%d create=2 ver=2", rev),
		fmt.Sprintf("DELETE k= mod=%d create=0 ver=0", rev),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events:\n%v\nwant\n%v", got, want)
	}
	if kvs := h.get("k", rev); len(kvs) != 0 {
		t.Fatalf("k at %d: %v, want none", rev, kvs)
	}
	var exported []string
	if err := storeactor.ExportVersions(h.db, func(kv *mvccpb.KeyValue, sub int64, tombstone bool) error {
		exported = append(exported, fmt.Sprintf("%d.%d %s=%s tombstone=%v", kv.ModRevision, sub, kv.Key, kv.Value, tombstone))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	wantExport := []string{
		fmt.Sprintf("%d.1 k= tombstone=true", rev),
		fmt.Sprintf("%d.0 k=v1 tombstone=false", rev),
		"2.0 k=v0 tombstone=false",
	}
	if fmt.Sprint(exported) != fmt.Sprint(wantExport) {
		t.Fatalf("exported:\n%v\nwant\n%v", exported, wantExport)
	}
}

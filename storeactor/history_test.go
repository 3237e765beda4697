package storeactor_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

func eventStrings(evs []*mvccpb.Event) []string {
	var out []string
	for _, e := range evs {
		s := fmt.Sprintf("%s %s@%d", e.Type, e.Kv.Key, e.Kv.ModRevision)
		if e.Type == mvccpb.Event_PUT {
			s += fmt.Sprintf("=%s c%d v%d", e.Kv.Value, e.Kv.CreateRevision, e.Kv.Version)
		}
		out = append(out, s)
	}
	return out
}

func TestHistoryReadsEventsInRevisionOrder(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1") // 2
	h.put("b", "2") // 3
	h.must(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{
		{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("a"), Value: []byte("3")}}},
		{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("b")}}},
	}}}) // 4
	h.put("c", "4") // 5

	evs, last, err := h.reader.History(2, 5, 100, 1<<20, nil)
	if err != nil || last != 5 {
		t.Fatalf("last %d err %v", last, err)
	}
	want := "[PUT a@2=1 c2 v1 PUT b@3=2 c3 v1 PUT a@4=3 c2 v2 DELETE b@4 PUT c@5=4 c5 v1]"
	if got := fmt.Sprint(eventStrings(evs)); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	// A key filter, and a window in the middle.
	evs, _, _ = h.reader.History(3, 4, 100, 1<<20, func(k []byte) bool { return string(k) == "b" })
	if got := fmt.Sprint(eventStrings(evs)); got != "[PUT b@3=2 c3 v1 DELETE b@4]" {
		t.Fatalf("filtered: %s", got)
	}
}

func TestHistoryStopsOnRevisionBoundaries(t *testing.T) {
	h := newHarness(t)
	big := strings.Repeat("x", 1000)
	for i := 0; i < 6; i++ {
		h.must(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(fmt.Sprint("k", i, "a")), Value: []byte(big)}}},
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(fmt.Sprint("k", i, "b")), Value: []byte(big)}}},
		}}}) // revisions 2..7, two changes each
	}
	// maxScan 3: the second revision is read whole, never split.
	evs, last, err := h.reader.History(2, 7, 3, 1<<20, nil)
	if err != nil || last != 3 || len(evs) != 4 {
		t.Fatalf("maxScan: last %d, %d events, err %v", last, len(evs), err)
	}
	// maxBytes 2500: the second revision takes it past the bound; the read
	// stops after it.
	evs, last, _ = h.reader.History(2, 7, 100, 2500, nil)
	if last != 3 || len(evs) != 4 {
		t.Fatalf("maxBytes: last %d, %d events", last, len(evs))
	}
	// Reading on from last+1 gives the rest.
	evs, last, _ = h.reader.History(4, 7, 100, 1<<20, nil)
	if last != 7 || len(evs) != 8 {
		t.Fatalf("rest: last %d, %d events", last, len(evs))
	}
}

func TestHistoryBelowCompactionIsCompacted(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 4; i++ {
		h.put("a", fmt.Sprint(i)) // 2..5
	}
	h.must(compactReq(4, false))
	if _, _, err := h.reader.History(3, 5, 100, 1<<20, nil); !errors.Is(err, rpctypes.ErrGRPCCompacted) {
		t.Fatalf("history below the compaction: %v", err)
	}
	evs, last, err := h.reader.History(4, 5, 100, 1<<20, nil)
	if err != nil || last != 5 || fmt.Sprint(eventStrings(evs)) != "[PUT a@4=2 c2 v3 PUT a@5=3 c2 v4]" {
		t.Fatalf("history from the compaction: %v %d %v", eventStrings(evs), last, err)
	}
	if kv, err := h.reader.PrevKV([]byte("a"), 5); err != nil || kv == nil || string(kv.Value) != "2" {
		t.Fatalf("prev of a@5 = %v, %v", kv, err)
	}
	if kv, err := h.reader.PrevKV([]byte("a"), 4); err != nil || kv != nil {
		t.Fatalf("prev of a@4 is compacted, got %v, %v", kv, err)
	}
}

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// TestBigListDifferential gives MetaStore, with a budget of range bytes
// in flight far smaller than one list, and the reference etcd the same
// 20k keys of 1 KiB under one prefix (100k with METASTORE_LONG=1), some
// overwritten, some deleted; then ten clients at once (a connection each)
// list the whole prefix from MetaStore, and ten list it in Kubernetes'
// pages of 500, some of the whole lists in a read-only txn. Every list
// must be etcd's answer (headers' ids aside),
// and once they are done no byte may be left charged to the budget.
func TestBigListDifferential(t *testing.T) {
	keys := 20_000
	if os.Getenv("METASTORE_LONG") == "1" {
		keys = 100_000
	}
	ms := StartMetaStore(t, WithFlags("--max-range-bytes-in-flight=4194304"))
	ref := StartEtcd(t)
	var wg sync.WaitGroup
	for _, s := range []*Server{ms, ref} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fillBigList(pb.NewKVClient(s.Client(t).ActiveConnection()), keys); err != nil {
				t.Errorf("%s: %v", s.Kind, err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	ctx := context.Background()
	whole := &pb.RangeRequest{Key: []byte("/list/"), RangeEnd: []byte("/list0")}
	refKV := pb.NewKVClient(ref.Client(t).ActiveConnection())
	want, err := refKV.Range(ctx, whole, recvAll)
	if err != nil {
		t.Fatal(err)
	}
	normalize(want)
	wantPages, err := pagedList(ctx, refKV, whole)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("etcd: %d keys listed, %d pages, revision %d", len(want.Kvs), len(wantPages), want.Header.Revision)

	for i := range 20 {
		kv := pb.NewKVClient(ms.Client(t).ActiveConnection())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%4 == 0 {
				// A read-only txn is charged to the budget as a Range is.
				got, err := kv.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: whole}}}}, recvAll)
				var rng *pb.RangeResponse
				if err == nil {
					rng = got.Responses[0].GetResponseRange()
					rng.Header = got.Header
				}
				if d := diffResult(rng, err, want, nil); d != "" {
					t.Errorf("whole list %d in a txn: %s: %s", i, d, fmtRes(shortRange(rng), err))
				}
				return
			}
			if i%2 == 0 {
				got, err := kv.Range(ctx, whole, recvAll)
				if d := diffResult(got, err, want, nil); d != "" {
					t.Errorf("whole list %d: %s: %s", i, d, fmtRes(shortRange(got), err))
				}
				return
			}
			pages, err := pagedList(ctx, kv, whole)
			if err != nil {
				t.Errorf("paged list %d: %v", i, err)
				return
			}
			if len(pages) != len(wantPages) {
				t.Errorf("paged list %d: %d pages, etcd %d", i, len(pages), len(wantPages))
				return
			}
			for p := range pages {
				if d := diffResult(pages[p], nil, wantPages[p], nil); d != "" {
					t.Errorf("paged list %d, page %d: %s: %s", i, p, d, fmtRes(shortRange(pages[p]), nil))
					return
				}
			}
		}()
	}
	wg.Wait()

	// The responses are read: their bytes come back as gRPC frees them.
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := scrapeMetrics(t, ms.ClientURL()+"/metrics")
		inFlight, ok := m.value("metastore_range_bytes_in_flight")
		if !ok {
			t.Fatal("no metastore_range_bytes_in_flight")
		}
		if inFlight == 0 {
			waits, _ := m.value("metastore_range_budget_waits_total")
			t.Logf("requests that waited for range budget: %v", waits)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v bytes still charged to the range budget", inFlight)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// recvAll lifts gRPC's 4 MiB default on a response's size (clientv3 sets
// the same on its own calls).
var recvAll = grpc.MaxCallRecvMsgSize(math.MaxInt32)

// fillBigList writes /list/00000000.. with 1 KiB values 100 to a txn,
// then overwrites every 10th key and deletes every 13th.
func fillBigList(kv pb.KVClient, keys int) error {
	ctx := context.Background()
	key := func(i int) []byte { return fmt.Appendf(nil, "/list/%08d", i) }
	put := func(i int, v string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{
			Key: key(i), Value: bytes.Repeat(fmt.Appendf(nil, "%s%07d", v, i), 128)}}}
	}
	txn := func(ops []*pb.RequestOp) error {
		_, err := kv.Txn(ctx, &pb.TxnRequest{Success: ops})
		return err
	}
	var ops []*pb.RequestOp
	for i := range keys {
		if ops = append(ops, put(i, "v")); len(ops) == 100 || i == keys-1 {
			if err := txn(ops); err != nil {
				return err
			}
			ops = nil
		}
	}
	for i := 0; i < keys; i += 10 * 100 {
		for j := i; j < min(i+1000, keys); j += 10 {
			ops = append(ops, put(j, "w"))
		}
		if err := txn(ops); err != nil {
			return err
		}
		ops = nil
	}
	for i := 0; i < keys; i += 13 * 100 {
		for j := i; j < min(i+1300, keys); j += 13 {
			ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: key(j)}}})
		}
		if err := txn(ops); err != nil {
			return err
		}
		ops = nil
	}
	return nil
}

// pagedList lists r as Kubernetes does: pages of 500 keys with the total
// count, the first at the current revision, the next ones from after the
// last key at the first's revision. The pages come normalized.
func pagedList(ctx context.Context, kv pb.KVClient, r *pb.RangeRequest) ([]*pb.RangeResponse, error) {
	page := &pb.RangeRequest{Key: r.Key, RangeEnd: r.RangeEnd, Limit: 500}
	var out []*pb.RangeResponse
	for {
		resp, err := kv.Range(ctx, page)
		if err != nil {
			return nil, err
		}
		normalize(resp)
		out = append(out, resp)
		if !resp.More {
			return out, nil
		}
		if page.Revision == 0 {
			page.Revision = resp.Header.Revision
		}
		page.Key = append(bytes.Clone(resp.Kvs[len(resp.Kvs)-1].Key), 0)
	}
}

// shortRange is r with its first three key-values only, for a message.
func shortRange(r *pb.RangeResponse) *pb.RangeResponse {
	if r == nil {
		return nil
	}
	c := proto.Clone(r).(*pb.RangeResponse)
	c.Kvs = c.Kvs[:min(3, len(c.Kvs))]
	return c
}

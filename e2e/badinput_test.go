package e2e

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type badCase struct {
	name     string
	codeOnly bool // compare only the gRPC code (message comes from grpc-go)
	wantCode codes.Code
	do       func(ctx context.Context, kv pb.KVClient) error
}

func putOp(k, v string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}}
}

func delOp(k, end string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(k), RangeEnd: []byte(end)}}}
}

func txnOp(t *pb.TxnRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: t}}
}

func badCases() []badCase {
	txn := func(r *pb.TxnRequest) func(context.Context, pb.KVClient) error {
		return func(ctx context.Context, kv pb.KVClient) error { _, err := kv.Txn(ctx, r); return err }
	}
	put := func(r *pb.PutRequest) func(context.Context, pb.KVClient) error {
		return func(ctx context.Context, kv pb.KVClient) error { _, err := kv.Put(ctx, r); return err }
	}
	rng := func(r *pb.RangeRequest) func(context.Context, pb.KVClient) error {
		return func(ctx context.Context, kv pb.KVClient) error { _, err := kv.Range(ctx, r); return err }
	}
	compact := func(rev int64) func(context.Context, pb.KVClient) error {
		return func(ctx context.Context, kv pb.KVClient) error {
			_, err := kv.Compact(ctx, &pb.CompactionRequest{Revision: rev})
			return err
		}
	}
	var ops129 []*pb.RequestOp
	for i := 0; i < 129; i++ {
		ops129 = append(ops129, putOp(fmt.Sprintf("many/%03d", i), "v"))
	}
	return []badCase{
		{name: "put empty key", do: put(&pb.PutRequest{Value: []byte("v")})},
		{name: "range empty key", do: rng(&pb.RangeRequest{})},
		{name: "delete empty key", do: func(ctx context.Context, kv pb.KVClient) error {
			_, err := kv.DeleteRange(ctx, &pb.DeleteRangeRequest{})
			return err
		}},
		{name: "txn compare empty key", do: txn(&pb.TxnRequest{Compare: []*pb.Compare{{Target: pb.Compare_VERSION}}})},
		{name: "txn put empty key", do: txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("", "v")}})},
		{name: "txn range empty key", do: txn(&pb.TxnRequest{Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{}}}}})},
		{name: "ignore_value with value", do: put(&pb.PutRequest{Key: []byte("a"), Value: []byte("v"), IgnoreValue: true})},
		{name: "ignore_lease with lease", do: put(&pb.PutRequest{Key: []byte("a"), Value: []byte("v"), Lease: 7, IgnoreLease: true})},
		{name: "txn ignore_value with value", do: txn(&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("a"), Value: []byte("v"), IgnoreValue: true}}}}})},
		{name: "too many txn ops", do: txn(&pb.TxnRequest{Success: ops129})},
		{name: "too many txn ops in failure", do: txn(&pb.TxnRequest{Failure: ops129})},
		{name: "txn duplicate put", do: txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "1"), putOp("a", "2")}})},
		{name: "txn put and overlapping delete", do: txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("b", "1"), delOp("a", "c")}})},
		{name: "txn delete then put in range", do: txn(&pb.TxnRequest{Failure: []*pb.RequestOp{delOp("a", "z"), putOp("c", "1")}})},
		{name: "txn put and delete same key", do: txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "1"), delOp("a", "")}})},
		{name: "nested txn duplicate put", do: txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "1"),
			txnOp(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "2")}})}})},
		{name: "nested txn delete overlapping outer put", do: txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("b", "1"),
			txnOp(&pb.TxnRequest{Failure: []*pb.RequestOp{delOp("a", "c")}})}})},
		{name: "nested txn duplicate put inside", do: txn(&pb.TxnRequest{Success: []*pb.RequestOp{
			txnOp(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("x", "1"), putOp("x", "2")}})}})},
		{name: "invalid sort order", do: rng(&pb.RangeRequest{Key: []byte("a"), SortOrder: 99})},
		{name: "invalid sort target", do: rng(&pb.RangeRequest{Key: []byte("a"), SortOrder: pb.RangeRequest_ASCEND, SortTarget: 99})},
		{name: "range compacted revision", do: rng(&pb.RangeRequest{Key: []byte("a"), Revision: 2})},
		{name: "range future revision", do: rng(&pb.RangeRequest{Key: []byte("a"), Revision: 1000})},
		{name: "txn range compacted revision", do: txn(&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), Revision: 2}}}}})},
		{name: "txn range future revision", do: txn(&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), Revision: 1000}}}}})},
		{name: "request too large", do: put(&pb.PutRequest{Key: []byte("big"), Value: bytes.Repeat([]byte("x"), 1600*1024)})},
		{name: "over grpc limit", codeOnly: true, wantCode: codes.ResourceExhausted,
			do: put(&pb.PutRequest{Key: []byte("big"), Value: bytes.Repeat([]byte("x"), 3<<20)})},
		{name: "unknown lease", do: put(&pb.PutRequest{Key: []byte("a"), Value: []byte("v"), Lease: 12345})},
		{name: "txn unknown lease", do: txn(&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("a"), Lease: 12345}}}}})},
		{name: "ignore_value on missing key", do: put(&pb.PutRequest{Key: []byte("missing"), IgnoreValue: true})},
		{name: "ignore_lease on missing key", do: put(&pb.PutRequest{Key: []byte("missing"), Value: []byte("v"), IgnoreLease: true})},
		{name: "txn ignore_value on missing key", do: txn(&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("missing"), IgnoreValue: true}}}}})},
		{name: "compact future revision", do: compact(1000)},
		{name: "compact compacted revision", do: compact(2)},
		{name: "compact at compaction revision", do: compact(3)},
	}
}

// TestBadInput sends invalid requests to MetaStore and to the reference etcd:
// both must fail the same way (gRPC code and message), neither revision may
// move, and the servers must still serve afterwards.
func TestBadInput(t *testing.T) {
	ms := StartMetaStore(t)
	ref := StartEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	type target struct {
		name string
		kv   pb.KVClient
	}
	var targets []target
	for _, s := range []*Server{ms, ref} {
		cli, err := clientv3.New(clientv3.Config{
			Endpoints:          []string{s.Endpoint()},
			DialTimeout:        5 * time.Second,
			Logger:             zap.NewNop(),
			MaxCallSendMsgSize: 16 << 20, // let the servers, not the client, refuse big requests
		})
		if err != nil {
			t.Fatalf("client for %s: %v", s.Name, err)
		}
		t.Cleanup(func() { _ = cli.Close() })
		kv := pb.NewKVClient(cli.ActiveConnection())
		// Same starting state: revision 5, compacted at 3.
		for _, k := range []string{"a", "b", "c", "d"} {
			if _, err := kv.Put(ctx, &pb.PutRequest{Key: []byte(k), Value: []byte(k)}); err != nil {
				t.Fatalf("%s: setup put: %v", s.Name, err)
			}
		}
		if _, err := kv.Compact(ctx, &pb.CompactionRequest{Revision: 3, Physical: true}); err != nil {
			t.Fatalf("%s: setup compact: %v", s.Name, err)
		}
		targets = append(targets, target{s.Name, kv})
	}
	revOf := func(t *testing.T, tg target) int64 {
		t.Helper()
		resp, err := tg.kv.Range(ctx, &pb.RangeRequest{Key: []byte("a")})
		if err != nil {
			t.Fatalf("%s does not serve: %v", tg.name, err)
		}
		if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "a" {
			t.Fatalf("%s: get a = %v", tg.name, resp.Kvs)
		}
		return resp.Header.Revision
	}

	for _, c := range badCases() {
		t.Run(c.name, func(t *testing.T) {
			var errs [2]*status.Status
			for i, tg := range targets {
				before := revOf(t, tg)
				cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
				err := c.do(cctx, tg.kv)
				ccancel()
				if err == nil {
					t.Fatalf("%s: no error", tg.name)
				}
				errs[i] = status.Convert(err)
				if after := revOf(t, tg); after != before {
					t.Errorf("%s: revision moved %d -> %d", tg.name, before, after)
				}
			}
			msS, refS := errs[0], errs[1]
			if c.codeOnly {
				if msS.Code() != c.wantCode || refS.Code() != c.wantCode {
					t.Errorf("codes: metastore %s (%q), etcd %s (%q); want %s",
						msS.Code(), msS.Message(), refS.Code(), refS.Message(), c.wantCode)
				}
				return
			}
			if msS.Code() != refS.Code() || msS.Message() != refS.Message() {
				t.Errorf("mismatch:\n  etcd:      code=%s msg=%q\n  metastore: code=%s msg=%q",
					refS.Code(), refS.Message(), msS.Code(), msS.Message())
			} else {
				t.Logf("both: code=%s msg=%q", msS.Code(), msS.Message())
			}
		})
	}
}

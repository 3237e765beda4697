package gateway

import (
	"context"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/testkit"
)

// A handler that panics fails its own RPC with Internal, unary or stream;
// the panic is counted, the RPC counted as Internal, and the server goes
// on serving the same connection.
func TestHandlerPanicIsInternal(t *testing.T) {
	conn, reg := servedGateway(t, false)
	kv, maint := pb.NewKVClient(conn), pb.NewMaintenanceClient(conn)
	ctx := context.Background()
	before := testkit.Gather(t, reg)

	// The stand-in raft answers this put with a RangeResponse.
	_, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("panic"), Value: []byte("v")})
	if status.Code(err) != codes.Internal {
		t.Fatalf("put whose handler panics: %v, want Internal", err)
	}
	// The gateway has no Snapshotter: Snapshot dereferences nil.
	stream, err := maint.Snapshot(ctx, &pb.SnapshotRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Internal {
		t.Fatalf("snapshot whose handler panics: %v, want Internal", err)
	}

	if _, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Fatalf("put after the panics: %v", err)
	}
	if _, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("k")}); err != nil {
		t.Fatalf("range after the panics: %v", err)
	}

	after := testkit.Gather(t, reg)
	delta := func(name string, labels ...string) float64 {
		return after.Total(name, labels...) - before.Total(name, labels...)
	}
	if got := delta("metastore_recovered_panics_total", "where", "grpc"); got != 2 {
		t.Errorf("metastore_recovered_panics_total{where=grpc} grew by %v, want 2", got)
	}
	for _, m := range []string{"Put", "Snapshot"} {
		if got := delta("grpc_server_handled_total", "grpc_method", m, "grpc_code", "Internal"); got != 1 {
			t.Errorf("grpc_server_handled_total{%s, Internal} grew by %v, want 1", m, got)
		}
	}
}

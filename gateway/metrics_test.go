package gateway

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
)

// metricsGateway serves a Gateway on loopback (servedGateway); it returns
// a KV client that sends clientv3's API version, and the member's registry.
func metricsGateway(t *testing.T, extensive bool) (pb.KVClient, *prometheus.Registry) {
	t.Helper()
	conn, reg := servedGateway(t, extensive)
	return pb.NewKVClient(conn), reg
}

// servedGateway serves a Gateway on loopback with a stand-in raft actor
// (a put of key "fail" is refused for want of a leader; one of key
// "panic" is answered with a response of the wrong type, which the
// handler's type assertion panics on; the others are answered) and an
// empty store, and no snapshots; it returns a connection whose calls send
// clientv3's API version, and the member's registry.
func servedGateway(t *testing.T, extensive bool) (*grpc.ClientConn, *prometheus.Registry) {
	t.Helper()
	db, err := storeactor.OpenPebble("/db", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reader, err := storeactor.NewReader(db)
	if err != nil {
		t.Fatal(err)
	}
	sys := actors.NewSystem(zap.NewNop())
	raft := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *raftactor.Propose:
			switch string(m.Req.GetPut().GetKey()) {
			case "fail":
				actors.Reply(m.Reply, actors.Result{Err: rpctypes.ErrGRPCNoLeader})
				return
			case "panic":
				actors.Reply(m.Reply, actors.Result{Resp: &pb.RangeResponse{}})
				return
			}
			actors.Reply(m.Reply, actors.Result{Resp: &pb.PutResponse{Header: &pb.ResponseHeader{}}})
		case *raftactor.ReadsWaiting:
			m.Batch.Finish(nil) // stays published: every later read is answered at once too
		}
	}))
	t.Cleanup(func() { sys.Root.Stop(raft) })
	view := new(raftactor.ViewRef)
	view.Store(&raftactor.View{ID: 1, ClusterID: 2, Lead: 1, Term: 1})
	g := New(Config{
		Root: sys.Root, Raft: raft, RaftView: view, Store: reader, IDs: raftactor.NewIDGen(1, time.Now()),
		MaxRequestBytes: 1 << 20, RequestTimeout: 5 * time.Second, Members: func() []*pb.Member { return []*pb.Member{{ID: 1}} },
		Version: "3.7.3", ClusterVersion: "3.7", ExtensiveMetrics: extensive,
	})
	return serve(t, g), testkit.Registry(t, NewCollector(g))
}

// serve serves g's client server on loopback until the test ends and
// returns a connection whose calls send clientv3's API version.
func serve(t *testing.T, g *Gateway) *grpc.ClientConn {
	t.Helper()
	srv := g.NewServer()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoker(metadata.AppendToOutgoingContext(ctx, rpctypes.MetadataClientAPIVersionKey, "3.7"), method, req, reply, cc, opts...)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// The client server's RPCs move grpc-prometheus' families by method and
// code, etcd's byte, client version and request duration counters, and
// refused proposals count as failed; the member's identity gauges are
// there; grpc_server_handling_seconds only with extensive metrics.
func TestMetricsClientServer(t *testing.T) {
	kv, reg := metricsGateway(t, true)
	before := testkit.Gather(t, reg)
	ctx := context.Background()
	for range 3 {
		if _, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kv.Put(ctx, &pb.PutRequest{Value: []byte("v")}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("put of an empty key: %v", err)
	}
	if _, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("fail"), Value: []byte("v")}); status.Code(err) != codes.Unavailable {
		t.Fatalf("put without a leader: %v", err)
	}
	if _, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	after := testkit.Gather(t, reg)
	delta := func(name string, labels ...string) float64 {
		return after.Total(name, labels...) - before.Total(name, labels...)
	}
	put := []string{"grpc_service", "etcdserverpb.KV", "grpc_method", "Put", "grpc_type", "unary"}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"grpc_server_started_total", put, 5},
		{"grpc_server_handled_total", append(put, "grpc_code", "OK"), 3},
		{"grpc_server_handled_total", append(put, "grpc_code", "InvalidArgument"), 1},
		{"grpc_server_handled_total", append(put, "grpc_code", "Unavailable"), 1},
		{"grpc_server_msg_received_total", put, 5},
		{"grpc_server_msg_sent_total", put, 5}, // errors too (grpc-prometheus counts every unary reply)
		{"grpc_server_handling_seconds", put, 5},
		{"grpc_server_handled_total", []string{"grpc_method", "Range", "grpc_code", "OK"}, 1},
		{"etcd_server_client_requests_total", []string{"type", "unary", "client_api_version", "3.7"}, 6},
		{"etcd_server_request_duration_seconds", []string{"type", "Put", "success", "true"}, 3},
		{"etcd_server_request_duration_seconds", []string{"type", "Put", "success", "false"}, 1},
		{"etcd_server_request_duration_seconds", []string{"type", "Range", "success", "true"}, 1},
		{"etcd_server_proposals_failed_total", nil, 1},
	} {
		if got := delta(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v grew by %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := delta("etcd_network_client_grpc_received_bytes_total"); got < 5*4 {
		t.Errorf("client_grpc_received_bytes_total grew by %v", got)
	}
	if got := delta("etcd_network_client_grpc_sent_bytes_total"); got <= 0 {
		t.Errorf("client_grpc_sent_bytes_total grew by %v", got)
	}
	// Every method has its series from the start, as etcd's.
	if f := after["grpc_server_started_total"]; f == nil || len(f.Metric) < 40 {
		t.Errorf("grpc_server_started_total not initialized for every method")
	}
	for _, c := range []struct {
		name   string
		labels []string
	}{
		{"etcd_server_version", []string{"server_version", "3.7.3"}},
		{"etcd_cluster_version", []string{"cluster_version", "3.7"}},
		{"etcd_server_feature_enabled", []string{"name", "InitialCorruptCheck"}},
		{"etcd_server_go_version", nil},
	} {
		if _, ok := after[c.name]; !ok || (c.labels != nil && after.Total(c.name, c.labels...) == 0 && c.name != "etcd_server_feature_enabled") {
			t.Errorf("%s%v missing", c.name, c.labels)
		}
	}
	if after.Total("os_fd_used") <= 0 || after.Total("os_fd_limit") <= 0 {
		t.Errorf("os_fd_used %v, os_fd_limit %v", after.Total("os_fd_used"), after.Total("os_fd_limit"))
	}

	_, basic := metricsGateway(t, false)
	if n, err := testutil.GatherAndCount(basic, "grpc_server_handling_seconds"); err != nil || n != 0 {
		t.Errorf("grpc_server_handling_seconds without extensive metrics: %d series, %v", n, err)
	}
}

// BenchmarkInterceptors measures what the client server's metrics add to a
// unary RPC, on the interceptor path alone (no network, a handler that
// does nothing): grpc-prometheus (a label lookup per counter it moves, as
// etcd pays), the client version counter, and the codec's byte counts.
func BenchmarkInterceptors(b *testing.B) {
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(rpctypes.MetadataClientAPIVersionKey, "3.7"))
	info := &grpc.UnaryServerInfo{FullMethod: "/etcdserverpb.KV/Put"}
	handler := func(context.Context, any) (any, error) { return nil, nil }
	req := &pb.PutRequest{Key: []byte("key"), Value: []byte("value")}
	run := func(b *testing.B, ic grpc.UnaryServerInterceptor) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = ic(ctx, req, info, handler)
		}
	}
	b.Run("none", func(b *testing.B) {
		run(b, func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			return h(ctx, req)
		})
	})
	b.Run("grpc-prometheus", func(b *testing.B) { run(b, newServerMetrics(false).UnaryServerInterceptor()) })
	b.Run("grpc-prometheus-extensive", func(b *testing.B) { run(b, newServerMetrics(true).UnaryServerInterceptor()) })
	b.Run("client-requests", func(b *testing.B) { run(b, countUnary) })
	b.Run("codec", func(b *testing.B) {
		c := newCountingCodec()
		b.ReportAllocs()
		for b.Loop() {
			out, _ := c.Marshal(req)
			_ = c.Unmarshal(out, new(pb.PutRequest))
			out.Free()
		}
	})
	b.Run("codec-plain", func(b *testing.B) {
		c := newCountingCodec().CodecV2
		b.ReportAllocs()
		for b.Loop() {
			out, _ := c.Marshal(req)
			_ = c.Unmarshal(out, new(pb.PutRequest))
			out.Free()
		}
	})
}

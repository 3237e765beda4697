package gateway

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	zapobserver "go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/storeactor"
)

// The secrets the requests below carry: neither may reach the log.
const (
	statsPassword = "pa55-w0rd-in-the-request"
	statsValue    = "value-in-the-request"
)

// statsGateway serves a Gateway whose log is observed at level, with
// warn as --warning-unary-request-duration, an empty store and a stand-in
// raft actor that answers every proposal with a response of its type (a
// write txn fails its compare; a delete deletes 2 keys).
func statsGateway(t *testing.T, level zapcore.Level, warn time.Duration) (*grpc.ClientConn, *zapobserver.ObservedLogs) {
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
			h := &pb.ResponseHeader{}
			var resp proto.Message
			switch {
			case m.Req.Put != nil:
				resp = &pb.PutResponse{Header: h}
			case m.Req.DeleteRange != nil:
				resp = &pb.DeleteRangeResponse{Header: h, Deleted: 2}
			case m.Req.Txn != nil:
				resp = &pb.TxnResponse{Header: h, Succeeded: false}
			case m.Req.AuthUserAdd != nil:
				resp = &pb.AuthUserAddResponse{Header: h}
			}
			actors.Reply(m.Reply, actors.Result{Resp: resp})
		case *raftactor.ReadsWaiting:
			m.Batch.Finish(nil) // stays published: every later read is answered at once too
		}
	}))
	t.Cleanup(func() { sys.Root.Stop(raft) })
	view := new(raftactor.ViewRef)
	view.Store(&raftactor.View{ID: 1, ClusterID: 2, Lead: 1, Term: 1})
	core, logs := zapobserver.New(level)
	g := New(Config{
		Root: sys.Root, Raft: raft, RaftView: view, Store: reader, IDs: raftactor.NewIDGen(1, time.Now()),
		MaxRequestBytes: 1 << 20, MaxTxnOps: 128, RequestTimeout: 5 * time.Second,
		Members: func() []*pb.Member { return []*pb.Member{{ID: 1}} },
		Version: "3.7.3", ClusterVersion: "3.7", BcryptCost: bcrypt.MinCost,
		Logger: zap.New(core), WarningUnaryRequestDuration: warn,
	})
	return serve(t, g), logs
}

// statsCall is one RPC and the request stats etcd logs for it.
type statsCall struct {
	method  string
	call    func(context.Context, *grpc.ClientConn) (proto.Message, error)
	reqSize int    // -1: not described (etcd's "-1" for any other RPC)
	count   int64  // request count
	content string // etcd's rendering, runs of spaces as one
	// respCount is the response's count: a Range's Count, a delete's Deleted.
	respCount func(proto.Message) int64
}

func statsCalls() []statsCall {
	put := &pb.PutRequest{Key: []byte("k1"), Value: []byte(statsValue), PrevKv: true}
	rng := &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), Limit: 5}
	del := &pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("c")}
	txn := &pb.TxnRequest{
		Compare: []*pb.Compare{{Target: pb.Compare_VALUE, Key: []byte("k1"), TargetUnion: &pb.Compare_Value{Value: []byte(statsValue)}}},
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: put}}},
		Failure: []*pb.RequestOp{
			{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("k1")}}},
			{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("k2")}}},
		},
	}
	zero := func(proto.Message) int64 { return 0 }
	return []statsCall{{
		method: "/etcdserverpb.KV/Put",
		call: func(ctx context.Context, c *grpc.ClientConn) (proto.Message, error) {
			return pb.NewKVClient(c).Put(ctx, put)
		},
		reqSize:   proto.Size(put),
		count:     1,
		content:   `key:"k1" value_size:20 prev_kv:true`,
		respCount: zero,
	}, {
		method: "/etcdserverpb.KV/Range",
		call: func(ctx context.Context, c *grpc.ClientConn) (proto.Message, error) {
			return pb.NewKVClient(c).Range(ctx, rng)
		},
		reqSize:   proto.Size(rng),
		content:   `key:"a" range_end:"z" limit:5`,
		respCount: func(m proto.Message) int64 { return m.(*pb.RangeResponse).Count },
	}, {
		method: "/etcdserverpb.KV/DeleteRange",
		call: func(ctx context.Context, c *grpc.ClientConn) (proto.Message, error) {
			return pb.NewKVClient(c).DeleteRange(ctx, del)
		},
		reqSize:   proto.Size(del),
		content:   `key:"a" range_end:"c"`,
		respCount: func(m proto.Message) int64 { return m.(*pb.DeleteRangeResponse).Deleted },
	}, {
		// The stand-in fails the compare: the failure branch is counted.
		method: "/etcdserverpb.KV/Txn",
		call: func(ctx context.Context, c *grpc.ClientConn) (proto.Message, error) {
			return pb.NewKVClient(c).Txn(ctx, txn)
		},
		reqSize: proto.Size(txn.Failure[0]) + proto.Size(txn.Failure[1]),
		count:   2,
		content: `compare:<target:VALUE key:"k1" value_size:20 > success:<request_put:<key:"k1" value_size:20 prev_kv:true >> ` +
			`failure:<request_range:{key:"k1"} request_delete_range:{key:"k2"}>`,
		respCount: zero,
	}, {
		method: "/etcdserverpb.Auth/UserAdd",
		call: func(ctx context.Context, c *grpc.ClientConn) (proto.Message, error) {
			return pb.NewAuthClient(c).UserAdd(ctx, &pb.AuthUserAddRequest{Name: "alice", Password: statsPassword})
		},
		reqSize: -1,
	}}
}

// requestStatsFields are etcd's field names, in etcd's order.
var requestStatsFields = []string{"start time", "time spent", "remote", "response type",
	"request count", "request size", "response count", "response size", "request content"}

// A request slower than --warning-unary-request-duration logs etcd's
// "request stats" at warn, with etcd's fields: the method, when it started
// and how long it took, the client's address, the request's count, size
// and content (a put's value as its size, a txn's ops of the branch it
// took, nothing of an auth request), the response's count and size.
// Neither a password nor a value reaches the log.
func TestRequestStatsSlowRequestWarns(t *testing.T) {
	conn, logs := statsGateway(t, zap.InfoLevel, time.Nanosecond) // every request is slow
	ctx := context.Background()
	for _, c := range statsCalls() {
		t.Run(c.method, func(t *testing.T) {
			logs.TakeAll()
			before := time.Now()
			resp, err := c.call(ctx, conn)
			after := time.Now()
			if err != nil {
				t.Fatal(err)
			}
			e := onlyRequestStats(t, logs)
			if e.Level != zap.WarnLevel {
				t.Errorf("level %v, want warn", e.Level)
			}
			f := e.ContextMap()
			if start, ok := f["start time"].(time.Time); !ok || start.Before(before) || start.After(after) {
				t.Errorf("start time %v, want within the call [%v, %v]", f["start time"], before, after)
			}
			if took, ok := f["time spent"].(time.Duration); !ok || took <= 0 || took > after.Sub(before) {
				t.Errorf("time spent %v, want within the call's %v", f["time spent"], after.Sub(before))
			}
			if remote, _ := f["remote"].(string); !strings.HasPrefix(remote, "127.0.0.1:") {
				t.Errorf("remote %q, want the client's loopback address", remote)
			}
			respCount, respSize := int64(-1), int64(-1)
			if c.reqSize >= 0 {
				respCount, respSize = c.respCount(resp), int64(proto.Size(resp))
			}
			want := map[string]any{
				"response type":   c.method,
				"request count":   c.count,
				"request size":    int64(c.reqSize),
				"response count":  respCount,
				"response size":   respSize,
				"request content": c.content,
			}
			if c.reqSize < 0 {
				want["request count"] = int64(-1)
			}
			for k, v := range want {
				if got := squeeze(f[k]); got != v {
					t.Errorf("%s: %v (%T), want %v", k, f[k], f[k], v)
				}
			}
			checkNoSecrets(t, e)
		})
	}
}

// A request that failed in its handler is still described, as etcd's
// log describes it (the handler's typed nil response): the request as
// sent, a response of no count and no size.
func TestRequestStatsFailedRequest(t *testing.T) {
	conn, logs := statsGateway(t, zap.InfoLevel, time.Nanosecond)
	put := &pb.PutRequest{Value: []byte(statsValue)} // no key: refused
	if _, err := pb.NewKVClient(conn).Put(context.Background(), put); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("put without a key: %v, want InvalidArgument", err)
	}
	f := onlyRequestStats(t, logs).ContextMap()
	want := map[string]any{"request count": int64(1), "request size": int64(proto.Size(put)),
		"response count": int64(0), "response size": int64(0), "request content": "value_size:20"}
	for k, v := range want {
		if squeeze(f[k]) != v {
			t.Errorf("%s: %v, want %v", k, f[k], v)
		}
	}
}

// Below the threshold and above debug, nothing is logged; at debug, every
// request logs "request stats" at debug, slow ones included (as etcd: no
// warning then).
func TestRequestStatsLevels(t *testing.T) {
	for _, tc := range []struct {
		name  string
		level zapcore.Level
		warn  time.Duration
		want  int // lines per request, at debug
	}{
		{"info-fast", zap.InfoLevel, time.Hour, 0},
		{"debug-fast", zap.DebugLevel, time.Hour, 1},
		{"debug-slow", zap.DebugLevel, time.Nanosecond, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, logs := statsGateway(t, tc.level, tc.warn)
			for _, c := range statsCalls() {
				logs.TakeAll()
				if _, err := c.call(context.Background(), conn); err != nil {
					t.Fatal(err)
				}
				stats := logs.FilterMessage("request stats").AllUntimed()
				if len(stats) != tc.want {
					t.Fatalf("%s: %d request stats lines, want %d: %v", c.method, len(stats), tc.want, stats)
				}
				for _, e := range stats {
					if e.Level != zap.DebugLevel {
						t.Errorf("%s: request stats at %v, want debug", c.method, e.Level)
					}
					checkNoSecrets(t, e)
				}
			}
		})
	}
}

// onlyRequestStats is the one "request stats" line logged, with etcd's
// field names in etcd's order.
func onlyRequestStats(t *testing.T, logs *zapobserver.ObservedLogs) zapobserver.LoggedEntry {
	t.Helper()
	stats := logs.FilterMessage("request stats").AllUntimed()
	if len(stats) != 1 {
		t.Fatalf("%d request stats lines, want 1: %v", len(stats), stats)
	}
	var names []string
	for _, f := range stats[0].Context {
		names = append(names, f.Key)
	}
	if strings.Join(names, ",") != strings.Join(requestStatsFields, ",") {
		t.Errorf("fields %q, want etcd's %q", names, requestStatsFields)
	}
	return stats[0]
}

// squeeze makes runs of spaces in a string one space: protobuf's text
// format puts one or two between fields at random, per build.
func squeeze(v any) any {
	if s, ok := v.(string); ok {
		return strings.Join(strings.Fields(s), " ")
	}
	return v
}

func checkNoSecrets(t *testing.T, e zapobserver.LoggedEntry) {
	t.Helper()
	for k, v := range e.ContextMap() {
		if s, ok := v.(string); ok && (strings.Contains(s, statsPassword) || strings.Contains(s, statsValue)) {
			t.Errorf("%s logs a secret: %q", k, s)
		}
	}
}

// BenchmarkRequestStats measures what request stats add to a unary RPC on
// the interceptor path alone: "none" is the interceptor they wrap, "fast"
// a request under the threshold with the logger at info (the hot path:
// no allocation), "debug" every request logged (to a discarding core).
func BenchmarkRequestStats(b *testing.B) {
	ctx := context.Background()
	info := &grpc.UnaryServerInfo{FullMethod: "/etcdserverpb.KV/Put"}
	req := &pb.PutRequest{Key: []byte("key"), Value: []byte("value")}
	resp := &pb.PutResponse{Header: &pb.ResponseHeader{}}
	handler := func(context.Context, any) (any, error) { return resp, nil }
	first := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return h(ctx, req)
	}
	run := func(b *testing.B, ic grpc.UnaryServerInterceptor) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = ic(ctx, req, info, handler)
		}
	}
	at := func(level zapcore.Level) *Gateway {
		return New(Config{Logger: zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), level))})
	}
	b.Run("none", func(b *testing.B) { run(b, first) })
	b.Run("fast", func(b *testing.B) { run(b, at(zap.InfoLevel).withRequestStats(first)) })
	b.Run("debug", func(b *testing.B) { run(b, at(zap.DebugLevel).withRequestStats(first)) })
}

package gateway

import (
	"context"
	"fmt"
	"net/http"

	gw "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/tmc/grpc-websocket-proxy/wsproxy"
	etcdgw "go.etcd.io/etcd/api/v3/etcdserverpb/gw"
	electiongw "go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb/gw"
	lockgw "go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb/gw"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
)

// PathJSON is where the JSON gateway is served.
const PathJSON = "/v3/"

// NewJSONHandler is etcd's JSON gateway (/v3/*): etcd's own generated
// grpc-gateway handlers for every service, calling the member's gRPC
// server through conn, so a JSON request takes exactly the path a gRPC
// client's does (limits, auth, interceptors). JSON as etcd writes it:
// proto field names, unset fields left out, unknown fields ignored; bytes
// are base64. The token goes in the Authorization header. Streams (watch,
// lease keep-alive, snapshot) are newline-delimited JSON over a chunked
// response, or a websocket, as etcd's.
func NewJSONHandler(ctx context.Context, conn *grpc.ClientConn, lg *zap.Logger) (http.Handler, error) {
	mux := gw.NewServeMux(gw.WithMarshalerOption(gw.MIMEWildcard, &gw.HTTPBodyMarshaler{
		Marshaler: &gw.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: false},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
		},
	}))
	for _, register := range []func(context.Context, *gw.ServeMux, *grpc.ClientConn) error{
		etcdgw.RegisterKVHandler,
		etcdgw.RegisterWatchHandler,
		etcdgw.RegisterLeaseHandler,
		etcdgw.RegisterClusterHandler,
		etcdgw.RegisterMaintenanceHandler,
		etcdgw.RegisterAuthHandler,
		lockgw.RegisterLockHandler,
		electiongw.RegisterElectionHandler,
	} {
		if err := register(ctx, mux, conn); err != nil {
			return nil, err
		}
	}
	return wsproxy.WebsocketProxy(mux,
		// A websocket upgrade is a GET; the gateway's streams are POSTs.
		wsproxy.WithRequestMutator(func(_ *http.Request, out *http.Request) *http.Request {
			out.Method = http.MethodPost
			return out
		}),
		wsproxy.WithMaxRespBodyBufferSize(0x7fffffff),
		wsproxy.WithLogger(wsLogger{lg}),
	), nil
}

// wsLogger routes the websocket proxy's log lines into zap.
type wsLogger struct{ lg *zap.Logger }

func (w wsLogger) Warnln(v ...any)  { w.lg.Warn(fmt.Sprint(v...)) }
func (w wsLogger) Debugln(v ...any) { w.lg.Debug(fmt.Sprint(v...)) }

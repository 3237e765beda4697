package gateway

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/pkg/v3/featuregate"
	etcdruntime "go.etcd.io/etcd/pkg/v3/runtime"
	"go.etcd.io/etcd/server/v3/features"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the codec countingCodec wraps
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/metrics"
	"github.com/metastore/metastore/storeactor"
)

// The gRPC front door's families, under etcd's names (v3rpc and
// etcdserver's request path), plus grpc-prometheus' grpc_server_* (per
// Gateway: see NewCollector). All are updated on the request path with
// atomic adds on series resolved once; the costs are measured in
// metrics_test.go (BenchmarkInterceptors).
var (
	// sentBytes and receivedBytes count the marshaled messages of the
	// client gRPC server, as etcd's codec does (countingCodec).
	sentBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "network", Name: "client_grpc_sent_bytes_total",
		Help: "The total number of bytes sent to grpc clients.",
	})
	receivedBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "network", Name: "client_grpc_received_bytes_total",
		Help: "The total number of bytes received from grpc clients.",
	})
	clientRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "client_requests_total",
		Help: "The total number of client requests per client version.",
	}, []string{"type", "client_api_version"})
	// requestDurationSec times each request the gateway proposes through
	// raft (by raft request type; success: it got the store's answer,
	// whatever that was), and linearizable or serializable Range and
	// read-only Txn requests ("Range", "ReadonlyTxn"), read index wait
	// included, as etcd does.
	requestDurationSec = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "server", Name: "request_duration_seconds",
		Help:    "Response latency distribution in seconds for each type.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	}, []string{"type", "success"})
	// proposalsFailed counts the gateway's proposals that got no answer:
	// refused by the raft actor (no leader, leader changed) or timed out.
	proposalsFailed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "proposals_failed_total",
		Help: "The total number of failed proposals seen.",
	})
	// streamFailures counts watch and lease keep-alive streams broken by
	// a failed receive or send that the client did not cause (etcd's
	// isClientCtxErr), by Type ("receive", "send") and API.
	streamFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "network", Name: "server_stream_failures_total",
		Help: "The total number of stream failures from the local server.",
	}, []string{"Type", "API"})

	// The watch send loop: each response the stream's goroutine sends,
	// timed from taking it to gRPC's Send returning.
	watchStreamDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd_debugging", Subsystem: "server", Name: "watch_send_loop_watch_stream_duration_seconds",
		Help:    "The total duration in seconds of running through the send loop watch stream response all events.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	watchStreamDurationPerEvent = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd_debugging", Subsystem: "server", Name: "watch_send_loop_watch_stream_duration_per_event_seconds",
		Help:    "The average duration in seconds of running through the send loop watch stream response, per event.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	watchControlDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd_debugging", Subsystem: "server", Name: "watch_send_loop_control_stream_duration_seconds",
		Help:    "The total duration in seconds of running through the send loop control stream response.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})

	// The process' file descriptors, counted at scrape time (etcd
	// samples them every 10 minutes).
	fdUsed = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "os", Subsystem: "fd", Name: "used",
		Help: "The number of used file descriptors.",
	}, func() float64 {
		n, _ := etcdruntime.FDUsage()
		return float64(n)
	})
	fdLimit = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "os", Subsystem: "fd", Name: "limit",
		Help: "The file descriptor limit.",
	}, func() float64 {
		n, _ := etcdruntime.FDLimit()
		return float64(n)
	})
)

func init() {
	metrics.MustRegister(sentBytes, receivedBytes, clientRequests, requestDurationSec, proposalsFailed, streamFailures,
		watchStreamDuration, watchStreamDurationPerEvent, watchControlDuration, fdUsed, fdLimit)
}

// requestTypeReadonlyTxn follows storeactor's request types in the
// request duration series; rangeRequest is a Range's.
const requestTypeReadonlyTxn = storeactor.NumRequestTypes

var rangeRequest = storeactor.RequestType(&pb.InternalRaftRequest{Range: &pb.RangeRequest{}})

// requestObservers are request_duration_seconds' series, resolved on
// first use (only the types a member serves are exposed, as etcd's).
var requestObservers [storeactor.NumRequestTypes + 1][2]atomic.Pointer[observer]

type observer struct{ prometheus.Observer }

func observeRequest(typ int, success bool, start time.Time) {
	i := 0
	if success {
		i = 1
	}
	cell := &requestObservers[typ][i]
	o := cell.Load()
	if o == nil {
		name := "ReadonlyTxn"
		if typ < storeactor.NumRequestTypes {
			name = storeactor.RequestTypeName(typ)
		}
		o = &observer{requestDurationSec.WithLabelValues(name, strconv.FormatBool(success))}
		cell.Store(o)
	}
	o.Observe(time.Since(start).Seconds())
}

// countingCodec is gRPC's proto codec, counting the bytes of every
// message marshaled to or unmarshaled from a client.
type countingCodec struct{ encoding.CodecV2 }

func newCountingCodec() countingCodec { return countingCodec{encoding.GetCodecV2("proto")} }

func (c countingCodec) Marshal(v any) (mem.BufferSlice, error) {
	out, err := c.CodecV2.Marshal(v)
	if err == nil {
		sentBytes.Add(float64(out.Len()))
	}
	return out, err
}

func (c countingCodec) Unmarshal(data mem.BufferSlice, v any) error {
	receivedBytes.Add(float64(data.Len()))
	return c.CodecV2.Unmarshal(data, v)
}

// versionCounters are one client_requests_total type's series by client
// API version: a copy-on-write map, read without a lock; a version not
// seen yet takes the lock once. Past maxVersions distinct versions (a
// client inventing them) the vector is asked directly.
type versionCounters struct {
	typ string
	mu  sync.Mutex
	m   atomic.Pointer[map[string]prometheus.Counter]
}

const maxVersions = 64

func (vc *versionCounters) inc(ver string) {
	if m := vc.m.Load(); m != nil {
		if c, ok := (*m)[ver]; ok {
			c.Inc()
			return
		}
	}
	c := clientRequests.WithLabelValues(vc.typ, ver)
	c.Inc()
	vc.mu.Lock()
	defer vc.mu.Unlock()
	old := vc.m.Load()
	if old != nil && len(*old) >= maxVersions {
		return
	}
	next := make(map[string]prometheus.Counter, 1)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	next[ver] = c
	vc.m.Store(&next)
}

var unaryRequests, streamRequests = &versionCounters{typ: "unary"}, &versionCounters{typ: "stream"}

// clientAPIVersion is the version clientv3 sends in its metadata
// ("unknown" without one); an invalid one is refused, as etcd does.
func clientAPIVersion(ctx context.Context) (string, error) {
	ver := "unknown"
	if vs := metadata.ValueFromIncomingContext(ctx, rpctypes.MetadataClientAPIVersionKey); len(vs) > 0 {
		ver = vs[0]
	}
	if !utf8.ValidString(ver) {
		return "", rpctypes.ErrGRPCInvalidClientAPIVersion
	}
	return ver, nil
}

// countUnary and countStream count etcd_server_client_requests_total.
func countUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ver, err := clientAPIVersion(ctx)
	if err != nil {
		return nil, err
	}
	unaryRequests.inc(ver)
	return handler(ctx, req)
}

func countStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ver, err := clientAPIVersion(ss.Context())
	if err != nil {
		return err
	}
	streamRequests.inc(ver)
	return handler(srv, ss)
}

// newServerMetrics is grpc-prometheus' server metrics as etcd sets them
// up: grpc_server_started_total, handled_total, msg_received_total and
// msg_sent_total, and with extensive (--metrics=extensive)
// grpc_server_handling_seconds.
func newServerMetrics(extensive bool) *grpcprom.ServerMetrics {
	var opts []grpcprom.ServerMetricsOption
	if extensive {
		opts = append(opts, grpcprom.WithServerHandlingTimeHistogram())
	}
	return grpcprom.NewServerMetrics(opts...)
}

// NewCollector is the member's gRPC server metrics and identity:
//   - grpc_server_* (grpc-prometheus, as etcd: one series per method and
//     code from the start);
//   - etcd_server_version{server_version} (Config.Version),
//     etcd_cluster_version{cluster_version} (Config.ClusterVersion),
//     etcd_server_go_version{server_go_version}: 1;
//   - etcd_server_feature_enabled{name, stage}: Config.FeatureGate's
//     features, or etcd's defaults when it is nil.
func NewCollector(g *Gateway) prometheus.Collector {
	fg := g.cfg.FeatureGate
	if fg == nil {
		fg = features.NewDefaultServerFeatureGate("metastore", nil)
	}
	return &collector{g: g, features: fg}
}

var (
	serverVersionDesc = prometheus.NewDesc("etcd_server_version",
		"Which version is running. 1 for 'server_version' label with current version.", []string{"server_version"}, nil)
	clusterVersionDesc = prometheus.NewDesc("etcd_cluster_version",
		"Which version is running. 1 for 'cluster_version' label with current cluster version", []string{"cluster_version"}, nil)
	goVersionDesc = prometheus.NewDesc("etcd_server_go_version",
		"Which Go version server is running with. 1 for 'server_go_version' label with current version.", []string{"server_go_version"}, nil)
	featureDesc = prometheus.NewDesc("etcd_server_feature_enabled",
		"Whether or not a feature is enabled. 1 is enabled, 0 is not.", []string{"name", "stage"}, nil)
)

type collector struct {
	g        *Gateway
	features featuregate.FeatureGate
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	c.g.serverMetrics.Describe(ch)
	ch <- serverVersionDesc
	ch <- clusterVersionDesc
	ch <- goVersionDesc
	ch <- featureDesc
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.g.serverMetrics.Collect(ch)
	ch <- prometheus.MustNewConstMetric(serverVersionDesc, prometheus.GaugeValue, 1, c.g.cfg.Version)
	ch <- prometheus.MustNewConstMetric(clusterVersionDesc, prometheus.GaugeValue, 1, c.g.cfg.ClusterVersion)
	ch <- prometheus.MustNewConstMetric(goVersionDesc, prometheus.GaugeValue, 1, runtime.Version())
	if mfg, ok := c.features.(featuregate.MutableFeatureGate); ok {
		for f, spec := range mfg.GetAll() {
			v := 0.0
			if c.features.Enabled(f) {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(featureDesc, prometheus.GaugeValue, v, string(f), string(spec.PreRelease))
		}
	}
}

// observeWatchSend times one response of a watch stream's send loop:
// events for the watch stream histograms, created, canceled and progress
// responses for the control one.
func observeWatchSend(resp *pb.WatchResponse, start time.Time) {
	d := time.Since(start).Seconds()
	if n := len(resp.Events); n > 0 {
		watchStreamDuration.Observe(d)
		watchStreamDurationPerEvent.Observe(d / float64(n))
		return
	}
	watchControlDuration.Observe(d)
}

var (
	watchRecvFailures     = streamFailures.WithLabelValues("receive", "watch")
	watchSendFailures     = streamFailures.WithLabelValues("send", "watch")
	keepAliveRecvFailures = streamFailures.WithLabelValues("receive", "lease-keepalive")
	keepAliveSendFailures = streamFailures.WithLabelValues("send", "lease-keepalive")
)

// countStreamFailure counts err on a stream unless the client caused it
// (its context ended, or the RPC was canceled or ran out of time).
func countStreamFailure(ctx context.Context, err error, c prometheus.Counter) {
	if ctx.Err() != nil {
		return
	}
	switch status.Code(err) {
	case codes.Canceled, codes.DeadlineExceeded:
		return
	}
	c.Inc()
}

// InitializeMetrics gives every method of s its grpc_server_* series at 0,
// as etcd's server has them from the start. NewServer does it for the
// services it registers; call it again after registering others on the
// server (grpc.health.v1.Health).
func (g *Gateway) InitializeMetrics(s *grpc.Server) { g.serverMetrics.InitializeMetrics(s) }

package node

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"

	"go.etcd.io/etcd/api/v3/version"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/pkg/v3/debugutil"
	"go.etcd.io/etcd/pkg/v3/httputil"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/test/bufconn"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/console"
	"github.com/metastore/metastore/gateway"
	"github.com/metastore/metastore/health"
	"github.com/metastore/metastore/metrics"
	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/serving"
	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/transport"
)

// clientListener is one bound client, client-HTTP or metrics listener.
type clientListener struct {
	l           net.Listener
	secure      bool
	traffic     serving.Traffic
	metricsOnly bool
}

// logServing prints etcd's line for a client listener, which operators
// grep for to tell TLS from plain listeners.
func (c clientListener) logServing(lg *zap.Logger) {
	if c.secure {
		lg.Info("serving client traffic securely", zap.String("traffic", c.traffic.String()), zap.String("address", c.l.Addr().String()))
		return
	}
	lg.Info("serving client traffic insecurely; this is strongly discouraged!", zap.String("traffic", c.traffic.String()), zap.String("address", c.l.Addr().String()))
}

// startGateway builds the gateway, its gRPC servers (plain and TLS
// client listeners, and the in-process one for the member's own client)
// with the gRPC health service, and the member's metrics registry.
func (n *Node) startGateway() error {
	// An in-process connection for the member's own client (Lock and
	// Election run etcd's recipes through it, as etcd does).
	selfListener := bufconn.Listen(1 << 20)
	n.dialSelf = dialer(selfListener)
	var err error
	n.self, err = clientv3.New(clientv3.Config{
		Endpoints:          []string{"127.0.0.1:0"}, // never dialled: the dialer below is
		MaxCallSendMsgSize: math.MaxInt32,
		Logger:             n.lg.Named("self-client").WithOptions(zap.IncreaseLevel(zap.WarnLevel)),
		DialOptions:        []grpc.DialOption{n.dialSelf},
	})
	if err != nil {
		return err
	}
	leader := newLeaderPeer(n.ident.member, n.peerClient, n.raftView, n.reader.Members)
	gw := gateway.New(gateway.Config{
		Root: n.system.Root, Raft: n.raft.PID(), RaftView: n.raftView, Store: n.reader, Watch: n.watchPID, Leases: n.leasePID,
		Tokens: n.tokens, JWT: n.cfg.JWT, IDs: n.ids, Audit: n.cfg.Audit, Logger: n.lg.Named("gateway"),
		MaxRequestBytes: n.cfg.MaxRequestBytes, MaxTxnOps: n.cfg.MaxTxnOps,
		RequestTimeout: n.cfg.RequestTimeout(),
		DBSize:         n.dbSize, Version: APIVersion,
		ClusterVersion: ClusterVersion, StorageVersion: StorageVersion,
		Snapshots:    n.snapshots,
		Defragment:   n.defrag.Defragment,
		Members:      n.members,
		LeaderLeases: leader, LeaderPromote: leader.promoteAtLeader,
		Peers: n.transport, StrictReconfigCheck: n.cfg.StrictReconfigCheck,
		ClientCertAuth: n.cfg.ClientTLS.ClientCertAuth,
		Self:           n.self, BcryptCost: n.cfg.BcryptCost,
		ExtensiveMetrics: n.cfg.ExtensiveMetrics, FeatureGate: n.cfg.FeatureGate,
		WarningUnaryRequestDuration: n.cfg.WarningUnaryRequestDuration,
		MaxRangeBytesInFlight:       n.cfg.MaxRangeBytesInFlight,
	})
	n.gw.Store(gw)

	n.grpcHealth = health.FollowGRPC(gw, n.cfg.Clock, n.cfg.HeartbeatInterval, n.lg)
	n.cfg.logClientServerOptions(n.lg)
	n.grpc = gw.NewServer(n.cfg.clientServerOptions()...)
	healthpb.RegisterHealthServer(n.grpc, n.grpcHealth)
	gw.InitializeMetrics(n.grpc)
	if n.tls.client != nil {
		// serving.Servers does the TLS handshakes (it routes each
		// connection by its ALPN offer); the server only reads their state.
		n.grpcTLS = gw.NewServer(append(n.cfg.clientServerOptions(), grpc.Creds(serving.HandshakenTLS()))...)
		healthpb.RegisterHealthServer(n.grpcTLS, n.grpcHealth)
		gw.InitializeMetrics(n.grpcTLS)
	}
	n.selfGRPC = gw.NewInProcessServer()
	n.serveInProcess(n.selfGRPC, selfListener, "serving the member's own client")
	if n.cfg.EnableGRPCGateway || n.cfg.EnableConsole {
		// The JSON gateway's and the console's own in-process server:
		// their requests are clients' (etcd's gateway dials its client
		// port), counted and logged as such, unlike the recipes' steps.
		jsonListener := bufconn.Listen(1 << 20)
		n.dialJSON = dialer(jsonListener)
		n.jsonGRPC = gw.NewJSONServer()
		n.serveInProcess(n.jsonGRPC, jsonListener, "serving the JSON gateway")
	}

	n.registry, err = metrics.NewRegistry(
		raftactor.NewCollector(n.raftView),
		storeactor.NewCollector(n.db, n.reader),
		n.defrag,
		transport.NewCollector(n.transport),
		actors.NewCollector(n.supervisor),
		gateway.NewCollector(gw),
	)
	return err
}

// serveClients serves the gateway's gRPC servers and the HTTP side (JSON
// gateway, health, version, metrics) on every client, client-HTTP and
// metrics listener.
func (n *Node) serveClients() error {
	checks := health.New(n.gateway(), n.cfg.RequestTimeout(), n.lg)
	metricsHandler := metrics.Handler(n.registry)
	clientHTTP, err := n.clientHTTPHandler(checks, metricsHandler)
	if err != nil {
		return err
	}
	metricsOnly := n.metricsListenerHandler(checks, metricsHandler)

	n.servers = serving.New(n.lg, n.cfg.maxConcurrentStreams())
	grpcTraffic := serving.GRPCAndHTTP
	if len(n.cfg.ListenClientHTTPURLs) > 0 {
		grpcTraffic = serving.GRPCOnly
	}
	for _, group := range []struct {
		urls    []string
		flag    string
		traffic serving.Traffic
		metrics bool
	}{
		{n.cfg.ListenClientURLs, "listen-client-urls", grpcTraffic, false},
		{n.cfg.ListenClientHTTPURLs, "listen-client-http-urls", serving.HTTPOnly, false},
		{n.cfg.ListenMetricsURLs, "listen-metrics-urls", serving.HTTPOnly, true},
	} {
		for _, raw := range group.urls {
			l, secure, err := n.cfg.listen(group.flag, raw, n.tls.client != nil)
			if err != nil {
				return err
			}
			c := clientListener{l: l, secure: secure, traffic: group.traffic, metricsOnly: group.metrics}
			n.clients = append(n.clients, c)
			tlsCfg := n.tls.client
			if !secure {
				tlsCfg = nil
			}
			switch {
			case group.metrics:
				n.lg.Info("serving metrics", zap.String("address", raw))
				n.servers.HTTP(l, tlsCfg, metricsOnly)
			case secure:
				n.servers.Client(l, tlsCfg, group.traffic, n.grpcTLS, clientHTTP)
			default:
				n.servers.Client(l, nil, group.traffic, n.grpc, clientHTTP)
			}
		}
	}
	n.lg.Info("now serving peer/client/metrics",
		zap.String("local-member-id", fmt.Sprintf("%x", n.ident.member)),
		zap.Strings("initial-advertise-peer-urls", n.cfg.InitialAdvertisePeerURLs),
		zap.Strings("listen-peer-urls", n.cfg.ListenPeerURLs),
		zap.Strings("advertise-client-urls", n.cfg.AdvertiseClientURLs),
		zap.Strings("listen-client-urls", n.cfg.ListenClientURLs),
		zap.Strings("listen-metrics-urls", n.cfg.ListenMetricsURLs))
	return nil
}

// metricsListenerHandler is what --listen-metrics-urls serve: /metrics
// and the health endpoints, with panics recovered (recoverHTTP).
func (n *Node) metricsListenerHandler(checks *health.Checker, metricsHandler http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metricsHandler)
	checks.Register(mux)
	return recoverHTTP(n.lg, actors.PanicHTTP, mux)
}

// dialer dials l, an in-process listener, whatever the address.
func dialer(l *bufconn.Listener) grpc.DialOption {
	return grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return l.DialContext(ctx) })
}

// serveInProcess serves srv on l until it stops, logging failed with its
// error if it fails.
func (n *Node) serveInProcess(srv *grpc.Server, l *bufconn.Listener, failed string) {
	n.serveWG.Add(1)
	go func() {
		defer n.serveWG.Done()
		if err := srv.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			n.lg.Error(failed, zap.Error(err))
		}
	}()
}

// clientHTTPHandler is the HTTP side of the client port: the JSON gateway
// and the web console (both through the member's in-process gRPC
// connection), /version, /metrics,
// the health endpoints, /debug/vars, and /debug/pprof/* when enabled —
// behind etcd's CORS headers, with panics recovered (recoverHTTP).
func (n *Node) clientHTTPHandler(checks *health.Checker, metricsHandler http.Handler) (http.Handler, error) {
	mux := http.NewServeMux()
	if n.cfg.EnableGRPCGateway || n.cfg.EnableConsole {
		// One in-process connection for both: their requests take a gRPC
		// client's path through a gRPC server of the member's.
		conn, err := grpc.NewClient("passthrough:///metastore", n.dialJSON,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)))
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		n.stopJSON = func() { cancel(); conn.Close() }
		if n.cfg.EnableGRPCGateway {
			h, err := gateway.NewJSONHandler(ctx, conn, n.lg.Named("json-gateway"))
			if err != nil {
				return nil, err
			}
			mux.Handle(gateway.PathJSON, h)
		}
		if n.cfg.EnableConsole {
			mux.Handle(console.Path, console.New(ctx, console.Config{Conn: conn, Gatherer: n.registry,
				MemberTLS: n.memberDialTLS(), Logger: n.lg.Named("console"), Clock: n.cfg.Clock}))
		}
	}
	mux.HandleFunc(pathVersion, serveVersion)
	mux.Handle("/metrics", metricsHandler)
	mux.Handle("/debug/vars", expvar.Handler())
	checks.Register(mux)
	if n.cfg.EnablePprof {
		for p, h := range debugutil.PProfHandlers() {
			mux.Handle(p, h)
		}
	}
	ac := &accessControl{mux: mux, lg: n.lg, cors: n.cfg.CORS, hosts: n.cfg.HostWhitelist}
	if n.cfg.EnableGRPCGateway && n.cfg.ClientTLS.ClientCertAuth {
		ac.authEnabled = func() bool { return n.reader.Auth().Enabled }
	}
	return recoverHTTP(n.lg, actors.PanicHTTP, ac), nil
}

// memberDialTLS is how the console dials other members' https client
// URLs: trusting --trusted-ca-file and presenting --cert-file, as a
// client of the cluster would (nil without client certificates: it then
// reaches plain-http members only).
func (n *Node) memberDialTLS() *tls.Config {
	if n.cfg.ClientTLS.Empty() {
		return nil
	}
	cfg, err := n.cfg.ClientTLS.ClientConfig()
	if err != nil {
		n.lg.Warn("the console cannot dial https members", zap.Error(err))
		return nil
	}
	return cfg
}

// accessControl is what etcd does to every client HTTP request before
// routing it: the old /v3beta/ prefix is /v3/; a plain-HTTP request must
// name a --host-whitelist host; CORS headers for --cors origins; a
// preflight OPTIONS is answered.
type accessControl struct {
	mux   *http.ServeMux
	lg    *zap.Logger
	cors  map[string]struct{} // empty or "*": any origin
	hosts map[string]struct{} // empty or "*": any host
	// authEnabled is set with --client-cert-auth and the JSON gateway on.
	// The gateway calls gRPC as itself, so a client certificate's common
	// name cannot become the request's user there: while auth is enabled,
	// a gateway request with a certificate that names one is refused
	// rather than run as someone else, as etcd does.
	authEnabled func() bool
}

func (a *accessControl) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/v3beta/") {
		r.URL.Path = strings.Replace(r.URL.Path, "/v3beta/", "/v3/", 1)
	}
	if r.TLS == nil {
		// A page on another site can point a browser at this port under a
		// name of its own (DNS rebinding): plain HTTP answers only the
		// names the operator allows.
		if host := httputil.GetHostname(r); !allowed(a.hosts, host) {
			a.lg.Warn("rejecting HTTP request to prevent DNS rebinding attacks", zap.String("host", host))
			http.Error(w, fmt.Sprintf(rebindingRefusal, host), http.StatusMisdirectedRequest)
			return
		}
	} else if a.authEnabled != nil && strings.HasPrefix(r.URL.Path, gateway.PathJSON) && a.authEnabled() {
		for _, chain := range r.TLS.VerifiedChains {
			if len(chain) > 0 && chain[0].Subject.CommonName != "" {
				http.Error(w, "CommonName of client sending a request against gateway will be ignored and not used as expected", http.StatusBadRequest)
				return
			}
		}
	}
	if _, all := a.cors["*"]; all || len(a.cors) == 0 {
		addCORS(w, "*")
	} else if origin := r.Header.Get("Origin"); allowed(a.cors, origin) {
		addCORS(w, origin)
	}
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusOK)
		return
	}
	a.mux.ServeHTTP(w, r)
}

func addCORS(w http.ResponseWriter, origin string) {
	w.Header().Add("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE")
	w.Header().Add("Access-Control-Allow-Origin", origin)
	w.Header().Add("Access-Control-Allow-Headers", "accept, content-type, authorization")
}

// allowed reports whether v is in set, where an empty set or "*" allows
// everything.
func allowed(set map[string]struct{}, v string) bool {
	if len(set) == 0 {
		return true
	}
	_, all := set["*"]
	_, ok := set[v]
	return all || ok
}

// rebindingRefusal is etcd's answer (421) to a plain-HTTP request for a
// host not in --host-whitelist, word for word.
const rebindingRefusal = `
etcd received your request, but the Host header was unrecognized.

To fix this, choose one of the following options:
- Enable TLS, then any HTTPS request will be allowed.
- Add the hostname you want to use to the whitelist in settings.
  - e.g. etcd --host-whitelist %q

This requirement has been added to help prevent "DNS Rebinding" attacks (CVE-2018-5702).
`

const pathVersion = "/version"

// serveVersion is etcd's /version: the etcd versions MetaStore speaks.
func serveVersion(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	// etcd reports the cluster version as major.minor.0.
	b, _ := json.Marshal(&version.Versions{Server: APIVersion, Cluster: ClusterVersion + ".0", Storage: StorageVersion})
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// gateway is the client gateway, nil until serveClients built it.
func (n *Node) gateway() *gateway.Gateway { return n.gw.Load() }

// dbSize is the space the member's DB takes on disk.
func (n *Node) dbSize() int64 { return int64(n.db.Metrics().DiskSpaceUsage()) }

// listen opens a listener for one of flag's URLs: https and unixs ones
// are served with TLS (haveCert: certificates are configured, which
// setupTLS checked); TCP ones with the socket options (sockopts.go).
func (cfg *Config) listen(flag, raw string, haveCert bool) (net.Listener, bool, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, false, fmt.Errorf("%s %q: %w", flag, raw, err)
	}
	secure := false
	switch u.Scheme {
	case "http", "unix":
	case "https", "unixs":
		if !haveCert && flag == "listen-metrics-urls" {
			return nil, false, errors.New("client TLS key/cert (--cert-file, --key-file) must be provided for metrics secure url")
		}
		secure = haveCert
	default:
		return nil, false, fmt.Errorf("%s %q: URL scheme must be http, https, unix or unixs", flag, raw)
	}
	var l net.Listener
	if u.Scheme == "unix" || u.Scheme == "unixs" {
		l, err = net.Listen("unix", u.Host+u.Path)
	} else {
		l, err = cfg.listenTCP(u.Host)
	}
	return l, secure, err
}

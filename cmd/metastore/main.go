// Command metastore runs one MetaStore member. It takes etcd's server
// flags, under the same names and with the same defaults.
package main

import (
	"flag"
	"fmt"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/logutil"
	"go.etcd.io/etcd/pkg/v3/featuregate"
	"go.etcd.io/etcd/pkg/v3/flags"
	"go.etcd.io/etcd/server/v3/features"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/crypto/bcrypt"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/authactor"
	"github.com/metastore/metastore/compactor"
	"github.com/metastore/metastore/node"
)

// Version is MetaStore's own version.
const Version = "0.1.0"

func main() {
	if os.Getenv("GOGC") == "" {
		// The Go heap is small next to pebble's block cache and memtables
		// (allocated outside it), and the request paths allocate a lot:
		// collecting at 3x the live heap instead of 2x cost ~35 MB of peak
		// RSS and gave ~10 % more puts per CPU second (docs/benchmarks.md).
		debug.SetGCPercent(gcPercent)
	}
	os.Exit(run(os.Args[1:]))
}

// gcPercent is the GOGC MetaStore runs with unless GOGC is set.
const gcPercent = 200

func run(args []string) int {
	fs := flag.NewFlagSet("metastore", flag.ContinueOnError)
	var (
		name         = fs.String("name", "default", "Human-readable name for this member.")
		dataDir      = fs.String("data-dir", "", "Path to the data directory (default ${name}.metastore).")
		storage      = fs.String("storage", "pebble", "Storage engine: pebble (on disk) or memory (pebble on an in-memory FS; data is lost at exit).")
		listenClient = urlsFlag{"http://localhost:2379"}
		advClient    = urlsFlag{"http://localhost:2379"}
		listenPeer   = urlsFlag{"http://localhost:2380"}
		advPeer      = urlsFlag{"http://localhost:2380"}
		initCluster  = fs.String("initial-cluster", "", "Initial cluster configuration for bootstrapping (default ${name}=${initial-advertise-peer-urls}).")
		clusterState = fs.String("initial-cluster-state", "new", "Initial cluster state ('new' or 'existing').")
		forceNew     = fs.Bool("force-new-cluster", false, "Force to create a new one member cluster.")
		clusterToken = fs.String("initial-cluster-token", "etcd-cluster", "Initial cluster token for the etcd cluster during bootstrap.")
		snapCount    = fs.Uint64("snapshot-count", 10000, "Number of committed transactions to trigger a snapshot (raft log truncation).")
		catchUp      = fs.Uint64("snapshot-catchup-entries", 5000, "Number of entries for a slow follower to catch up after compacting the raft storage entries.")
		heartbeat    = fs.Uint("heartbeat-interval", 100, "Time (in milliseconds) of a heartbeat interval.")
		election     = fs.Uint("election-timeout", 1000, "Time (in milliseconds) for an election to timeout.")
		quota        = fs.Int64("quota-backend-bytes", 0, "Maximum size (in bytes) the backend may consume; 0 means the default 2GiB.")
		defragRate   = fs.Int64("defrag-rate-bytes", 12<<20, "Bytes per second a defragmentation may write while clients are writing (it runs at full speed when they are not); 0 means unpaced. MetaStore only.")
		maxReq       = fs.Uint("max-request-bytes", 1.5*1024*1024, "Maximum client request size in bytes the server will accept.")
		maxTxnOps    = fs.Uint("max-txn-ops", 128, "Maximum number of operations permitted in a transaction.")
		progressIvl  = fs.Duration("watch-progress-notify-interval", 10*time.Minute, "Duration of periodic watch progress notifications.")
		bcryptCost   = fs.Uint("bcrypt-cost", uint(bcrypt.DefaultCost), "Specify bcrypt algorithm cost factor for auth password hashing.")
		authToken    = fs.String("auth-token", "simple", "Specify auth token specific options.")
		authTokenTTL = fs.Uint("auth-token-ttl", 300, "The lifetime in seconds of the auth token.")
		compactMode  = fs.String("auto-compaction-mode", compactor.ModePeriodic, "interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for duration based retention, defaulting to hours if no time unit is provided (e.g. '5m'). 'revision' for revision number based retention.")
		compactKeep  = fs.String("auto-compaction-retention", "0", "Auto compaction retention for mvcc key value store. 0 means disable auto compaction.")
		auditLogPath = fs.String("audit-log-path", "", "File the audit log (auth changes, logins and auth refusals) is appended to, as JSON lines (default: the server log, logger \"audit\"). MetaStore only.")
		logLevel     = fs.String("log-level", "info", "Configures log level. Only supports debug, info, warn, error, panic, or fatal.")
		logger       = fs.String("logger", "zap", "Currently only supports 'zap' for structured logging.")
		version      = fs.Bool("version", false, "Print the version and exit.")
		featureGates = fs.String("feature-gates", "", "A set of key=value pairs that describe server level feature gates for alpha/experimental features (etcd's; MetaStore acts on InitialCorruptCheck).")
	)
	strictReconfig := fs.Bool("strict-reconfig-check", true, "Reject reconfiguration requests that would cause quorum loss.")
	corruptCheck := fs.Duration("corrupt-check-time", 0, "Duration of time between cluster corruption check passes.")
	maxLearners := fs.Int("max-learners", 1, "Sets the maximum number of learners that can be available in the cluster membership.")
	var clientTLS, peerTLS node.TLSFiles
	fs.StringVar(&clientTLS.CertFile, "cert-file", "", "Path to the client server TLS cert file.")
	fs.StringVar(&clientTLS.KeyFile, "key-file", "", "Path to the client server TLS key file.")
	fs.StringVar(&clientTLS.TrustedCAFile, "trusted-ca-file", "", "Path to the client server TLS trusted CA cert file.")
	fs.BoolVar(&clientTLS.ClientCertAuth, "client-cert-auth", false, "Enable client cert authentication.")
	fs.StringVar(&clientTLS.CRLFile, "client-crl-file", "", "Path to the client certificate revocation list file.")
	fs.BoolVar(&clientTLS.AutoTLS, "auto-tls", false, "Client TLS using generated certificates")
	fs.StringVar(&clientTLS.ClientCertFile, "client-cert-file", "", "Path to an explicit peer client TLS cert file otherwise cert file will be used when client auth is required.")
	fs.StringVar(&clientTLS.ClientKeyFile, "client-key-file", "", "Path to an explicit peer client TLS key file otherwise key file will be used when client auth is required.")
	fs.StringVar(&peerTLS.ClientCertFile, "peer-client-cert-file", "", "Path to an explicit peer client TLS cert file otherwise peer cert file will be used when client auth is required.")
	fs.StringVar(&peerTLS.ClientKeyFile, "peer-client-key-file", "", "Path to an explicit peer client TLS key file otherwise peer key file will be used when client auth is required.")
	fs.StringVar(&peerTLS.CertFile, "peer-cert-file", "", "Path to the peer server TLS cert file.")
	fs.StringVar(&peerTLS.KeyFile, "peer-key-file", "", "Path to the peer server TLS key file.")
	fs.StringVar(&peerTLS.TrustedCAFile, "peer-trusted-ca-file", "", "Path to the peer server TLS trusted CA file.")
	fs.BoolVar(&peerTLS.ClientCertAuth, "peer-client-cert-auth", false, "Enable peer client cert authentication.")
	fs.StringVar(&peerTLS.CRLFile, "peer-crl-file", "", "Path to the peer certificate revocation list file.")
	fs.BoolVar(&peerTLS.AutoTLS, "peer-auto-tls", false, "Peer TLS using generated certificates")
	fs.Var((*listFlag)(&peerTLS.AllowedCNs), "peer-cert-allowed-cn", "Comma-separated list of allowed CNs for inter-peer TLS authentication.")
	fs.Var((*listFlag)(&peerTLS.AllowedHostnames), "peer-cert-allowed-hostname", "Comma-separated list of allowed SAN hostnames for inter-peer TLS authentication.")
	fs.Var((*listFlag)(&clientTLS.AllowedHostnames), "client-cert-allowed-hostname", "Comma-separated list of allowed SAN hostnames for client cert authentication.")
	peerSkipSAN := fs.Bool("peer-skip-client-san-verification", false, "Skip verification of SAN field in client certificate for peer connections.")
	tlsMin := fs.String("tls-min-version", "TLS1.2", "Minimum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3.")
	tlsMax := fs.String("tls-max-version", "", "Maximum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3 (empty defers to Go).")
	cipherSuites := fs.String("cipher-suites", "", "Comma-separated list of supported TLS cipher suites between client/server and peers (empty will be auto-populated by Go).")
	certValidity := fs.Uint("self-signed-cert-validity", 1, "The validity period of the client and peer certificates, unit is year")
	fs.Var(&listenClient, "listen-client-urls", "List of URLs to listen on for client grpc traffic and http as long as --listen-client-http-urls is not specified.")
	var listenClientHTTP, listenMetrics urlsFlag
	fs.Var(&listenClientHTTP, "listen-client-http-urls", "List of URLs to listen on for http only client traffic. Enabling this flag removes http services from --listen-client-urls.")
	fs.Var(&listenMetrics, "listen-metrics-urls", "List of URLs to listen on for the metrics and health endpoints.")
	metricsLevel := fs.String("metrics", "basic", "Set level of detail for exported metrics, specify 'extensive' to include server side grpc histogram metrics")
	enablePprof := fs.Bool("enable-pprof", false, "Enable runtime profiling data via HTTP server. Address is at client URL + \"/debug/pprof/\"")
	enableGateway := fs.Bool("enable-grpc-gateway", true, "Enable GRPC gateway.")
	// etcd's own flag values: the same parsing, checks and error messages.
	cors := flags.NewUniqueURLsWithExceptions("*", "*")
	fs.Var(cors, "cors", "Comma-separated white list of origins for CORS, or cross-origin resource sharing, (empty or * means allow all)")
	hostWhitelist := flags.NewUniqueStringsValue("*")
	fs.Var(hostWhitelist, "host-whitelist", "Comma-separated acceptable hostnames from HTTP client requests, if server is not secure (empty means allow all).")
	fs.Var(&advClient, "advertise-client-urls", "List of this member's client URLs to advertise to the public.")
	fs.Var(&listenPeer, "listen-peer-urls", "List of URLs to listen on for peer traffic.")
	fs.Var(&advPeer, "initial-advertise-peer-urls", "List of this member's peer URLs to advertise to the rest of the cluster.")

	known, ignored := splitArgs(fs, args)
	if err := fs.Parse(known); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "'%s' is not a valid flag\n", fs.Arg(0))
		return 2
	}
	if *version {
		fmt.Printf("MetaStore Version: %s\netcd Version: %s\nGo Version: %s\nGo OS/Arch: %s/%s\n",
			Version, node.APIVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	}
	lg, err := newLogger(*logLevel, *logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer lg.Sync()
	audit := lg.Named("audit")
	if *auditLogPath != "" {
		if audit, err = newAuditLogger(*auditLogPath); err != nil {
			lg.Error("cannot open --audit-log-path", zap.Error(err))
			return 1
		}
		defer audit.Sync()
	}
	// etcd refuses a bad mode while checking its flags, whatever the
	// retention, and exits 1.
	if err := compactor.ValidateMode(*compactMode); err != nil {
		lg.Warn("failed to verify flags", zap.Error(err))
		return 1
	}
	for _, f := range ignored {
		lg.Warn("flag accepted for etcd compatibility but not supported yet; ignored", zap.String("flag", "--"+f))
	}
	// etcd takes any value other than "extensive" as basic; a typo that
	// silently drops the histograms an operator asked for is refused.
	if *metricsLevel != "basic" && *metricsLevel != "extensive" {
		lg.Error("invalid --metrics; want basic or extensive", zap.String("metrics", *metricsLevel))
		return 1
	}
	if *dataDir == "" {
		*dataDir = *name + ".metastore"
	}
	if *initCluster == "" {
		*initCluster = *name + "=" + strings.Join(advPeer, ",")
	}
	cluster, err := node.ParseInitialCluster(*initCluster)
	if err != nil {
		lg.Error("invalid flag", zap.Error(err))
		return 1
	}
	if *storage != "pebble" && *storage != "memory" {
		lg.Error("invalid --storage; want pebble or memory", zap.String("storage", *storage))
		return 1
	}
	if *quota == 0 {
		*quota = 2 << 30
	}
	if *heartbeat == 0 || *election < 5**heartbeat {
		lg.Error("--election-timeout should be at least 5 times --heartbeat-interval",
			zap.Uint("election-timeout", *election), zap.Uint("heartbeat-interval", *heartbeat))
		return 1
	}
	if int(*bcryptCost) < bcrypt.MinCost || int(*bcryptCost) > bcrypt.MaxCost {
		lg.Error("invalid --bcrypt-cost", zap.Uint("bcrypt-cost", *bcryptCost),
			zap.Int("min", bcrypt.MinCost), zap.Int("max", bcrypt.MaxCost))
		return 1
	}
	var jwt *authactor.JWTTokens
	switch kind, opts, _ := strings.Cut(*authToken, ","); kind {
	case "simple":
	case "jwt":
		if jwt, err = authactor.NewJWTTokens(opts, actors.RealClock); err != nil {
			lg.Error("invalid --auth-token", zap.Error(err))
			return 1
		}
	default:
		lg.Error("unknown --auth-token; want simple or jwt,...", zap.String("auth-token", *authToken))
		return 1
	}
	if *cipherSuites != "" {
		ids, err := node.ParseCipherSuites(strings.Split(*cipherSuites, ","))
		if err != nil {
			lg.Error("invalid --cipher-suites", zap.Error(err))
			return 1
		}
		clientTLS.CipherSuites, peerTLS.CipherSuites = ids, ids
	}
	// etcd checks the versions with its flags, after the cipher suites.
	if clientTLS.MinVersion, clientTLS.MaxVersion, err = node.ParseTLSVersions(*tlsMin, *tlsMax, clientTLS.CipherSuites); err != nil {
		lg.Warn("failed to verify flags", zap.Error(err))
		return 1
	}
	peerTLS.MinVersion, peerTLS.MaxVersion = clientTLS.MinVersion, clientTLS.MaxVersion
	// etcd parses the retention only when starting the server, and fails
	// with this (odd, but etcd's) message and exit 1.
	compactRetention, err := compactor.ParseRetention(*compactMode, *compactKeep)
	if err != nil {
		lg.Error("discovery failed", zap.Error(err))
		return 1
	}
	// etcd's own feature gate parser: same names, defaults and errors.
	gates := features.NewDefaultServerFeatureGate("metastore", lg)
	if err := gates.(featuregate.MutableFeatureGate).Set(*featureGates); err != nil {
		lg.Error("invalid --feature-gates", zap.Error(err))
		return 1
	}
	n, err := node.Start(node.Config{
		Name: *name, DataDir: *dataDir, InMemory: *storage == "memory",
		ListenClientURLs: listenClient, AdvertiseClientURLs: advClient,
		ListenClientHTTPURLs: listenClientHTTP, ListenMetricsURLs: listenMetrics,
		ExtensiveMetrics: *metricsLevel == "extensive", EnablePprof: *enablePprof, EnableGRPCGateway: *enableGateway,
		CORS: cors.Values, HostWhitelist: hostWhitelist.Values,
		InitialAdvertisePeerURLs: advPeer, InitialCluster: cluster, ListenPeerURLs: listenPeer,
		InitialClusterToken: *clusterToken, InitialClusterState: *clusterState, ForceNewCluster: *forceNew,
		SnapshotCount: *snapCount, SnapshotCatchUpEntries: *catchUp,
		StrictReconfigCheck: *strictReconfig, MaxLearners: *maxLearners,
		HeartbeatInterval: time.Duration(*heartbeat) * time.Millisecond,
		ElectionTimeout:   time.Duration(*election) * time.Millisecond,
		QuotaBackendBytes: *quota, DefragRateBytes: *defragRate, MaxRequestBytes: int(*maxReq), MaxTxnOps: int(*maxTxnOps),
		WatchProgressNotifyInterval: *progressIvl,
		BcryptCost:                  int(*bcryptCost),
		AuthTokenTTL:                time.Duration(*authTokenTTL) * time.Second,
		Audit:                       audit,
		JWT:                         jwt,
		InitialCorruptCheck:         gates.Enabled(features.InitialCorruptCheck),
		FeatureGate:                 gates,
		CorruptCheckTime:            *corruptCheck,
		ClientTLS:                   clientTLS, PeerTLS: peerTLS, PeerSkipClientSANVerify: *peerSkipSAN, SelfSignedCertValidity: *certValidity,
		AutoCompactionMode:      *compactMode,
		AutoCompactionRetention: compactRetention,
		Logger:                  lg,
	})
	if err != nil {
		// etcd's words for a server that cannot start: "failed to start"
		// when the error's text mentions both "include" and
		// "--initial-cluster" (etcd tests exactly that), "discovery
		// failed" for anything else.
		msg := "discovery failed"
		if strings.Contains(err.Error(), "include") && strings.Contains(err.Error(), "--initial-cluster") {
			msg = "failed to start"
		}
		lg.Error(msg, zap.Error(err))
		return 1
	}
	if addr := os.Getenv("METASTORE_PPROF_ADDR"); addr != "" {
		// Developer knob for profiling (go tool pprof http://ADDR/debug/pprof/profile).
		go func() { lg.Warn("pprof server stopped", zap.Error(http.ListenAndServe(addr, nil))) }()
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sigs:
		lg.Info("received signal; shutting down", zap.String("signal", s.String()))
		n.Stop()
		return 0
	case <-n.Removed():
		n.Stop()
		return 0
	case err := <-n.Fatal():
		lg.Error("fatal failure; shutting down", zap.Error(err))
		n.Stop()
		return 1
	}
}

// newAuditLogger appends JSON audit records to path, every level kept.
func newAuditLogger(path string) (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	cfg.Sampling = nil
	cfg.EncoderConfig = logutil.DefaultZapLoggerConfig.EncoderConfig
	cfg.OutputPaths = []string{path}
	cfg.ErrorOutputPaths = []string{"stderr"}
	lg, err := cfg.Build()
	if err != nil {
		return nil, err
	}
	return lg.Named("audit"), nil
}

func newLogger(level, kind string) (*zap.Logger, error) {
	if kind != "zap" {
		return nil, fmt.Errorf("unknown --logger %q (only 'zap' is supported)", kind)
	}
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("invalid --log-level %q", level)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Sampling = nil
	// etcd's encoder: its keys, and its timestamp layout (microseconds,
	// zone offset) that log tooling built for etcd parses.
	cfg.EncoderConfig = logutil.DefaultZapLoggerConfig.EncoderConfig
	cfg.OutputPaths = []string{"stderr"}
	return cfg.Build()
}

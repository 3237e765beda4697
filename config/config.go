// Package config reads a member's configuration the four ways etcd 3.7
// takes it — command-line flags, ETCD_* environment variables, a YAML
// file (--config-file, ETCD_CONFIG_FILE) — with etcd's names, defaults,
// precedence, checks and error messages, and decides what MetaStore does
// with each setting: implemented, not applicable to MetaStore's storage
// (accepted, and said so when set), or not built (refused at start unless
// left at etcd's default). No setting that changes behaviour is accepted
// and ignored.
//
// It owns no running state: cmd/metastore turns a Config into the
// node.Config of a member.
package config

import (
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Config is one member's configuration. A field's json name is its etcd
// config file key, which is also its flag name (--<key>) and, upper-cased
// with '-' as '_', its environment variable (ETCD_<KEY>). Fields marked
// json:"-" are read from the file in another shape (see file.go).
type Config struct {
	Name    string `json:"name"`
	DataDir string `json:"data-dir"`
	WALDir  string `json:"wal-dir"`

	SnapshotCount          uint64 `json:"snapshot-count"`
	SnapshotCatchUpEntries uint64 `json:"snapshot-catchup-entries"`
	MaxSnapshots           uint   `json:"max-snapshots"`
	MaxWALs                uint   `json:"max-wals"`

	HeartbeatMs                uint `json:"heartbeat-interval"`
	ElectionMs                 uint `json:"election-timeout"`
	InitialElectionTickAdvance bool `json:"initial-election-tick-advance"`
	PreVote                    bool `json:"pre-vote"`

	BackendBatchInterval time.Duration `json:"backend-batch-interval"`
	BackendBatchLimit    int           `json:"backend-batch-limit"`
	BackendFreelistType  string        `json:"backend-bbolt-freelist-type"`
	QuotaBackendBytes    int64         `json:"quota-backend-bytes"`
	MaxTxnOps            uint          `json:"max-txn-ops"`
	MaxRequestBytes      uint          `json:"max-request-bytes"`
	MaxConcurrentStreams uint32        `json:"max-concurrent-streams"`

	GRPCKeepAliveMinTime  time.Duration `json:"grpc-keepalive-min-time"`
	GRPCKeepAliveInterval time.Duration `json:"grpc-keepalive-interval"`
	GRPCKeepAliveTimeout  time.Duration `json:"grpc-keepalive-timeout"`
	SocketOpts            SocketOpts    `json:"socket-options"`
	// RaftReadTimeout and RaftWriteTimeout are flags only in etcd (they
	// set rafthttp globals).
	RaftReadTimeout, RaftWriteTimeout time.Duration `json:"-"`

	ListenPeerURLs       []string `json:"-"`
	ListenClientURLs     []string `json:"-"`
	ListenClientHTTPURLs []string `json:"-"`
	ListenMetricsURLs    []string `json:"-"`
	AdvertisePeerURLs    []string `json:"-"`
	AdvertiseClientURLs  []string `json:"-"`

	ClientTLS              TLS      `json:"-"`
	PeerTLS                TLS      `json:"-"`
	SelfSignedCertValidity uint     `json:"self-signed-cert-validity"`
	CipherSuites           []string `json:"cipher-suites"`
	TLSMinVersion          string   `json:"tls-min-version"`
	TLSMaxVersion          string   `json:"tls-max-version"`

	InitialCluster          string    `json:"initial-cluster"`
	InitialClusterState     string    `json:"initial-cluster-state"`
	InitialClusterToken     string    `json:"initial-cluster-token"`
	StrictReconfigCheck     bool      `json:"strict-reconfig-check"`
	DiscoverySRV            string    `json:"discovery-srv"`
	DiscoverySRVName        string    `json:"discovery-srv-name"`
	Discovery               Discovery `json:"discovery-config"`
	DiscoveryFallback       string    `json:"-"` // a flag only
	MaxLearners             int       `json:"max-learners"`
	ForceNewCluster         bool      `json:"force-new-cluster"`
	UnsafeNoFsync           bool      `json:"unsafe-no-fsync"`
	AutoCompactionMode      string    `json:"auto-compaction-mode"`
	AutoCompactionRetention string    `json:"auto-compaction-retention"`

	// CORS and HostWhitelist: empty or "*" allows any, as etcd.
	CORS          map[string]struct{} `json:"-"`
	HostWhitelist map[string]struct{} `json:"-"`

	AuthToken    string `json:"auth-token"`
	BcryptCost   uint   `json:"bcrypt-cost"`
	AuthTokenTTL uint   `json:"auth-token-ttl"`

	EnablePprof       bool   `json:"enable-pprof"`
	EnableGRPCGateway bool   `json:"enable-grpc-gateway"`
	Metrics           string `json:"metrics"`
	FeatureGates      string `json:"feature-gates"`

	CorruptCheckTime        time.Duration `json:"corrupt-check-time"`
	CompactHashCheckTime    time.Duration `json:"compact-hash-check-time"`
	CompactionBatchLimit    int           `json:"compaction-batch-limit"`
	CompactionSleepInterval time.Duration `json:"compaction-sleep-interval"`

	WatchProgressNotifyInterval       time.Duration `json:"watch-progress-notify-interval"`
	DowngradeCheckTime                time.Duration `json:"downgrade-check-time"`
	WarningApplyDuration              time.Duration `json:"warning-apply-duration"`
	WarningUnaryRequestDuration       time.Duration `json:"warning-unary-request-duration"`
	MemoryMlock                       bool          `json:"memory-mlock"`
	BootstrapDefragThresholdMegabytes uint          `json:"bootstrap-defrag-threshold-megabytes"`
	V2Deprecation                     string        `json:"v2-deprecation"`

	EnableDistributedTracing       bool   `json:"enable-distributed-tracing"`
	DistributedTracingAddress      string `json:"distributed-tracing-address"`
	DistributedTracingServiceName  string `json:"distributed-tracing-service-name"`
	DistributedTracingInstanceID   string `json:"distributed-tracing-instance-id"`
	DistributedTracingSamplingRate int    `json:"distributed-tracing-sampling-rate"`

	Logger                string   `json:"logger"`
	LogLevel              string   `json:"log-level"`
	LogFormat             string   `json:"log-format"`
	LogOutputs            []string `json:"log-outputs"`
	EnableLogRotation     bool     `json:"enable-log-rotation"`
	LogRotationConfigJSON string   `json:"log-rotation-config-json"`

	// MetaStore's own settings (no etcd flag has these names).
	Storage         string `json:"storage"`
	DefragRateBytes int64  `json:"defrag-rate-bytes"`
	AuditLogPath    string `json:"audit-log-path"`
	// LeaseCheckpointInterval is how often, with
	// --feature-gates=LeaseCheckpoint=true, the leader checkpoints each
	// lease's remaining TTL: etcd's fixed 5 minutes by default (etcd 3.7
	// has no flag for it).
	LeaseCheckpointInterval time.Duration `json:"lease-checkpoint-interval"`
	// MemoryLimitBytes is the member's memory budget (0: GOMEMLIMIT, else
	// the cgroup's limit, else none): pebble, the store's caches and the
	// Go heap are sized from it (storeactor.SizeMemory).
	MemoryLimitBytes int64 `json:"memory-limit-bytes"`
	// MaxRangeBytesInFlight bounds the bytes of Range responses built and
	// sent at once (gateway/rangebudget.go); 0 or less: no bound.
	MaxRangeBytesInFlight int64 `json:"max-range-bytes-in-flight"`
	// EnableConsole serves the web console (console/) under /ui/ on the
	// client HTTP side.
	EnableConsole bool `json:"enable-console"`

	// ConfigFile is the file the configuration was read from ("": none).
	ConfigFile string `json:"-"`
	// Explicit names the settings the flags, environment or file gave
	// (by flag name), as etcd's FlagsExplicitlySet.
	Explicit map[string]bool `json:"-"`
	// unknownKeys are the config file's keys that name no setting.
	unknownKeys []string
}

// TLS is one side's (client or peer) certificate settings.
type TLS struct {
	CertFile         string
	KeyFile          string
	ClientCertFile   string
	ClientKeyFile    string
	TrustedCAFile    string
	ClientCertAuth   bool
	CRLFile          string
	AutoTLS          bool
	AllowedCNs       []string
	AllowedHostnames []string
	// SkipClientSANVerify: peers only.
	SkipClientSANVerify bool
}

// SocketOpts are etcd's socket options (the file's socket-options).
type SocketOpts struct {
	ReusePort    bool `json:"reuse-port"`
	ReuseAddress bool `json:"reuse-address"`
}

// Discovery is etcd's v3 discovery configuration, in the shape of the
// file's discovery-config (etcd's v3discovery.DiscoveryConfig).
type Discovery struct {
	Token  string          `json:"token"`
	Client DiscoveryClient `json:"client"`
}

// DiscoveryClient is how a member reaches the discovery service.
type DiscoveryClient struct {
	Endpoints        []string      `json:"endpoints"`
	DialTimeout      time.Duration `json:"dial-timeout"`
	RequestTimeout   time.Duration `json:"request-timeout"`
	KeepAliveTime    time.Duration `json:"keepalive-time"`
	KeepAliveTimeout time.Duration `json:"keepalive-timeout"`
	Secure           struct {
		Cert               string `json:"cert"`
		Key                string `json:"key"`
		Cacert             string `json:"cacert"`
		InsecureTransport  bool   `json:"insecure-transport"`
		InsecureSkipVerify bool   `json:"insecure-skip-tls-verify"`
	} `json:"secure"`
	Auth struct {
		Username string `json:"username"`
		Password string `json:"password"`
	} `json:"auth"`
}

// etcd's defaults (embed.NewConfig and its flags), MetaStore's own where
// noted.
const (
	DefaultName                 = "default"
	defaultListenPeerURL        = "http://localhost:2380"
	defaultListenClientURL      = "http://localhost:2379"
	defaultMaxRequestBytes      = 1.5 * 1024 * 1024
	defaultWarningApplyDuration = 100 * time.Millisecond
	// defaultDefragRateBytes is MetaStore's: how fast a defragmentation
	// writes while clients write.
	defaultDefragRateBytes = 12 << 20
	// defaultLeaseCheckpointInterval is etcd's lessor's (not a setting
	// there).
	defaultLeaseCheckpointInterval = 5 * time.Minute
	// defaultMaxRangeBytesInFlight is MetaStore's (docs/benchmarks.md,
	// "Session 13: large lists").
	defaultMaxRangeBytesInFlight = 128 << 20
)

// Default is the configuration of a member started with no settings:
// etcd's defaults, and MetaStore's for its own settings.
func Default() *Config {
	c := &Config{
		Name:                          DefaultName,
		SnapshotCount:                 10000,
		SnapshotCatchUpEntries:        5000,
		MaxSnapshots:                  5,
		MaxWALs:                       5,
		HeartbeatMs:                   100,
		ElectionMs:                    1000,
		InitialElectionTickAdvance:    true,
		PreVote:                       true,
		MaxTxnOps:                     128,
		MaxRequestBytes:               defaultMaxRequestBytes,
		MaxConcurrentStreams:          ^uint32(0),
		GRPCKeepAliveMinTime:          5 * time.Second,
		GRPCKeepAliveInterval:         2 * time.Hour,
		GRPCKeepAliveTimeout:          20 * time.Second,
		RaftReadTimeout:               5 * time.Second,
		RaftWriteTimeout:              5 * time.Second,
		ListenPeerURLs:                []string{defaultListenPeerURL},
		ListenClientURLs:              []string{defaultListenClientURL},
		AdvertisePeerURLs:             []string{defaultListenPeerURL},
		AdvertiseClientURLs:           []string{defaultListenClientURL},
		SelfSignedCertValidity:        1,
		TLSMinVersion:                 "TLS1.2",
		InitialClusterState:           "new",
		InitialClusterToken:           "etcd-cluster",
		StrictReconfigCheck:           true,
		DiscoveryFallback:             "exit",
		MaxLearners:                   1,
		AutoCompactionMode:            "periodic",
		AutoCompactionRetention:       "0",
		CORS:                          map[string]struct{}{"*": {}},
		HostWhitelist:                 map[string]struct{}{"*": {}},
		AuthToken:                     "simple",
		BcryptCost:                    uint(bcrypt.DefaultCost),
		AuthTokenTTL:                  300,
		EnableGRPCGateway:             true,
		Metrics:                       "basic",
		CompactHashCheckTime:          time.Minute,
		WatchProgressNotifyInterval:   10 * time.Minute,
		DowngradeCheckTime:            5 * time.Second,
		WarningApplyDuration:          defaultWarningApplyDuration,
		WarningUnaryRequestDuration:   300 * time.Millisecond,
		V2Deprecation:                 "write-only",
		DistributedTracingAddress:     "localhost:4317",
		DistributedTracingServiceName: "etcd",
		Logger:                        "zap",
		LogLevel:                      "info",
		LogFormat:                     "json",
		LogOutputs:                    []string{"default"},
		LogRotationConfigJSON:         `{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}`,
		Storage:                       "pebble",
		DefragRateBytes:               defaultDefragRateBytes,
		LeaseCheckpointInterval:       defaultLeaseCheckpointInterval,
		MaxRangeBytesInFlight:         defaultMaxRangeBytesInFlight,
		EnableConsole:                 true,
		Explicit:                      map[string]bool{},
	}
	d := &c.Discovery.Client
	d.DialTimeout, d.RequestTimeout = 2*time.Second, 5*time.Second
	d.KeepAliveTime, d.KeepAliveTimeout = 2*time.Second, 6*time.Second
	d.Secure.InsecureTransport = true
	return c
}

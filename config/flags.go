package config

import (
	"flag"
	"fmt"

	"go.etcd.io/etcd/pkg/v3/flags"
)

// flagSet is etcd 3.7's server flag set bound to a Config. Scalar flags
// write the Config directly; list-valued flags use etcd's own flag value
// types (the same splitting, checks and error messages) and are copied
// into the Config after parsing (fromFlags).
type flagSet struct {
	*flag.FlagSet
	c            *Config
	version      bool
	clusterState *flags.SelectiveStringValue
	fallback     *flags.SelectiveStringValue
	v2depr       *flags.SelectiveStringsValue
}

// legacyFlags are flags of etcd 2 that etcd 3.7 still takes and ignores
// with a warning ("flag is no longer supported - ignoring").
var legacyFlags = []string{
	"cluster-active-size", "cluster-remove-delay", "cluster-sync-interval", "config", "force",
	"max-result-buffer", "max-retry-attempts", "peer-heartbeat-interval", "peer-election-timeout",
	"retry-interval", "snapshot", "v", "vv",
}

func newFlagSet(c *Config) *flagSet {
	fs := &flagSet{
		FlagSet:      flag.NewFlagSet("metastore", flag.ContinueOnError),
		c:            c,
		clusterState: flags.NewSelectiveStringValue("new", "existing"),
		fallback:     flags.NewSelectiveStringValue("exit", "proxy"),
		v2depr:       flags.NewSelectiveStringsValue("write-only", "write-only-drop-data", "gone", "not-yet"),
	}
	f := fs.FlagSet
	// member
	f.StringVar(&c.Name, "name", c.Name, "Human-readable name for this member.")
	f.StringVar(&c.DataDir, "data-dir", c.DataDir, "Path to the data directory (default ${name}.metastore).")
	f.StringVar(&c.WALDir, "wal-dir", c.WALDir, "Path to the dedicated wal directory (pebble's write-ahead log).")
	f.Uint64Var(&c.SnapshotCount, "snapshot-count", c.SnapshotCount, "Number of committed transactions to trigger a snapshot (raft log truncation).")
	f.Uint64Var(&c.SnapshotCatchUpEntries, "snapshot-catchup-entries", c.SnapshotCatchUpEntries, "Number of entries for a slow follower to catch up after compacting the raft storage entries.")
	f.UintVar(&c.MaxSnapshots, "max-snapshots", c.MaxSnapshots, "Maximum number of snapshot files to retain (0 is unlimited). Deprecated in v3.6 and will be decommissioned in v3.8.")
	f.UintVar(&c.MaxWALs, "max-wals", c.MaxWALs, "Maximum number of wal files to retain (0 is unlimited).")
	f.UintVar(&c.HeartbeatMs, "heartbeat-interval", c.HeartbeatMs, "Time (in milliseconds) of a heartbeat interval.")
	f.UintVar(&c.ElectionMs, "election-timeout", c.ElectionMs, "Time (in milliseconds) for an election to timeout.")
	f.BoolVar(&c.InitialElectionTickAdvance, "initial-election-tick-advance", c.InitialElectionTickAdvance, "Whether to fast-forward initial election ticks on boot for faster election.")
	f.BoolVar(&c.PreVote, "pre-vote", c.PreVote, "Enable the raft Pre-Vote algorithm to prevent disruption when a node that has been partitioned away rejoins the cluster.")
	f.Int64Var(&c.QuotaBackendBytes, "quota-backend-bytes", c.QuotaBackendBytes, "Sets the maximum size (in bytes) that the backend may consume. Exceeding this triggers an alarm and puts the member in read-only mode. Set to 0 to use the default 2GiB limit.")
	f.StringVar(&c.BackendFreelistType, "backend-bbolt-freelist-type", c.BackendFreelistType, "etcd's bbolt freelist type; not applicable to MetaStore's pebble backend.")
	f.DurationVar(&c.BackendBatchInterval, "backend-batch-interval", c.BackendBatchInterval, "etcd's bbolt commit interval; not applicable to MetaStore's pebble backend.")
	f.IntVar(&c.BackendBatchLimit, "backend-batch-limit", c.BackendBatchLimit, "etcd's bbolt commit batch size; not applicable to MetaStore's pebble backend.")
	f.UintVar(&c.MaxTxnOps, "max-txn-ops", c.MaxTxnOps, "Maximum number of operations permitted in a transaction.")
	f.UintVar(&c.MaxRequestBytes, "max-request-bytes", c.MaxRequestBytes, "Maximum client request size in bytes the server will accept.")
	f.DurationVar(&c.GRPCKeepAliveMinTime, "grpc-keepalive-min-time", c.GRPCKeepAliveMinTime, "Minimum interval duration that a client should wait before pinging server.")
	f.DurationVar(&c.GRPCKeepAliveInterval, "grpc-keepalive-interval", c.GRPCKeepAliveInterval, "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).")
	f.DurationVar(&c.GRPCKeepAliveTimeout, "grpc-keepalive-timeout", c.GRPCKeepAliveTimeout, "Additional duration of wait before closing a non-responsive connection (0 to disable).")
	f.BoolVar(&c.SocketOpts.ReusePort, "socket-reuse-port", c.SocketOpts.ReusePort, "Enable to set socket option SO_REUSEPORT on listeners allowing rebinding of a port already in use.")
	f.BoolVar(&c.SocketOpts.ReuseAddress, "socket-reuse-address", c.SocketOpts.ReuseAddress, "Enable to set socket option SO_REUSEADDR on listeners allowing binding to an address in `TIME_WAIT` state.")
	f.Var(flags.NewUint32Value(c.MaxConcurrentStreams), "max-concurrent-streams", "Maximum concurrent streams that each client can open at a time.")
	f.DurationVar(&c.RaftReadTimeout, "raft-read-timeout", c.RaftReadTimeout, "Read timeout set on each raft peer connection.")
	f.DurationVar(&c.RaftWriteTimeout, "raft-write-timeout", c.RaftWriteTimeout, "Write timeout set on each raft peer connection.")
	f.StringVar(&c.Storage, "storage", c.Storage, "Storage engine: pebble (on disk) or memory (pebble on an in-memory FS; data is lost at exit). MetaStore only.")
	f.Int64Var(&c.DefragRateBytes, "defrag-rate-bytes", c.DefragRateBytes, "Bytes per second a defragmentation may write while clients are writing (it runs at full speed when they are not); 0 means unpaced. MetaStore only.")
	f.Int64Var(&c.MemoryLimitBytes, "memory-limit-bytes", c.MemoryLimitBytes, "Memory budget of the member: pebble's memtables and block cache, the store's caches and the Go heap's soft limit are sized from it; 0 means GOMEMLIMIT, else the cgroup's memory limit, else lean defaults. MetaStore only.")
	f.DurationVar(&c.LeaseCheckpointInterval, "lease-checkpoint-interval", c.LeaseCheckpointInterval, "How often the leader checkpoints each lease's remaining TTL with --feature-gates=LeaseCheckpoint=true (etcd's fixed interval by default). MetaStore only.")
	f.Int64Var(&c.MaxRangeBytesInFlight, "max-range-bytes-in-flight", c.MaxRangeBytesInFlight, "Bytes of Range and read-only Txn responses the server builds and sends at once; further large reads wait (the oldest always proceeds); 0 means unbounded. MetaStore only.")

	// URLs
	f.Var(flags.NewUniqueURLsWithExceptions(defaultListenPeerURL, ""), "listen-peer-urls", "List of URLs to listen on for peer traffic.")
	f.Var(flags.NewUniqueURLsWithExceptions(defaultListenClientURL, ""), "listen-client-urls", "List of URLs to listen on for client grpc traffic and http as long as --listen-client-http-urls is not specified.")
	f.Var(flags.NewUniqueURLsWithExceptions("", ""), "listen-client-http-urls", "List of URLs to listen on for http only client traffic. Enabling this flag removes http services from --listen-client-urls.")
	f.Var(flags.NewUniqueURLsWithExceptions("", ""), "listen-metrics-urls", "List of URLs to listen on for the metrics and health endpoints.")
	f.Var(flags.NewUniqueURLsWithExceptions(defaultListenPeerURL, ""), "initial-advertise-peer-urls", "List of this member's peer URLs to advertise to the rest of the cluster.")
	f.Var(flags.NewUniqueURLsWithExceptions(defaultListenClientURL, ""), "advertise-client-urls", "List of this member's client URLs to advertise to the public.")

	// clustering
	f.StringVar(&c.InitialCluster, "initial-cluster", c.InitialCluster, "Initial cluster configuration for bootstrapping (default ${name}=${initial-advertise-peer-urls}).")
	f.Var(fs.clusterState, "initial-cluster-state", "Initial cluster state ('new' when bootstrapping a new cluster or 'existing' when adding new members to an existing cluster). After successful initialization (bootstrapping or adding), flag is ignored on restarts.")
	f.StringVar(&c.InitialClusterToken, "initial-cluster-token", c.InitialClusterToken, "Initial cluster token for the etcd cluster during bootstrap.")
	f.BoolVar(&c.StrictReconfigCheck, "strict-reconfig-check", c.StrictReconfigCheck, "Reject reconfiguration requests that would cause quorum loss.")
	f.IntVar(&c.MaxLearners, "max-learners", c.MaxLearners, "Sets the maximum number of learners that can be available in the cluster membership.")
	f.Var(flags.NewUniqueStringsValue(""), "discovery-endpoints", "V3 discovery: List of gRPC endpoints of the discovery service.")
	d := &c.Discovery.Client
	f.StringVar(&c.Discovery.Token, "discovery-token", "", "V3 discovery: discovery token for the etcd cluster to be bootstrapped.")
	f.DurationVar(&d.DialTimeout, "discovery-dial-timeout", d.DialTimeout, "V3 discovery: dial timeout for client connections.")
	f.DurationVar(&d.RequestTimeout, "discovery-request-timeout", d.RequestTimeout, "V3 discovery: timeout for discovery requests (excluding dial timeout).")
	f.DurationVar(&d.KeepAliveTime, "discovery-keepalive-time", d.KeepAliveTime, "V3 discovery: keepalive time for client connections.")
	f.DurationVar(&d.KeepAliveTimeout, "discovery-keepalive-timeout", d.KeepAliveTimeout, "V3 discovery: keepalive timeout for client connections.")
	f.BoolVar(&d.Secure.InsecureTransport, "discovery-insecure-transport", d.Secure.InsecureTransport, "V3 discovery: disable transport security for client connections.")
	f.BoolVar(&d.Secure.InsecureSkipVerify, "discovery-insecure-skip-tls-verify", false, "V3 discovery: skip server certificate verification (CAUTION: this option should be enabled only for testing purposes).")
	f.StringVar(&d.Secure.Cert, "discovery-cert", "", "V3 discovery: identify secure client using this TLS certificate file.")
	f.StringVar(&d.Secure.Key, "discovery-key", "", "V3 discovery: identify secure client using this TLS key file.")
	f.StringVar(&d.Secure.Cacert, "discovery-cacert", "", "V3 discovery: verify certificates of TLS-enabled secure servers using this CA bundle.")
	f.StringVar(&d.Auth.Username, "discovery-user", "", "V3 discovery: username[:password] for authentication (prompt if password is not supplied).")
	f.StringVar(&d.Auth.Password, "discovery-password", "", "V3 discovery: password for authentication (if this option is used, --user option shouldn't include password).")
	f.Var(fs.fallback, "discovery-fallback", fmt.Sprintf("Valid values include %q", fs.fallback.Valids()))
	f.StringVar(&c.DiscoverySRV, "discovery-srv", c.DiscoverySRV, "DNS domain used to bootstrap initial cluster.")
	f.StringVar(&c.DiscoverySRVName, "discovery-srv-name", c.DiscoverySRVName, "Service name to query when using DNS discovery.")
	f.BoolVar(&c.ForceNewCluster, "force-new-cluster", false, "Force to create a new one member cluster.")
	f.BoolVar(&c.UnsafeNoFsync, "unsafe-no-fsync", false, "Disables fsync, unsafe, will cause data loss.")
	f.StringVar(&c.AutoCompactionRetention, "auto-compaction-retention", c.AutoCompactionRetention, "Auto compaction retention for mvcc key value store. 0 means disable auto compaction.")
	f.StringVar(&c.AutoCompactionMode, "auto-compaction-mode", c.AutoCompactionMode, "interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for duration based retention, defaulting to hours if no time unit is provided (e.g. '5m'). 'revision' for revision number based retention.")
	f.Var(fs.v2depr, "v2-deprecation", fmt.Sprintf("v2store deprecation stage: %q. Deprecated and scheduled for removal in v3.8. The default value is enforced, ignoring user input.", fs.v2depr.Valids()))

	// security
	tlsFlags(f, &c.ClientTLS, "")
	tlsFlags(f, &c.PeerTLS, "peer-")
	f.Var(flags.NewStringsValue(""), "client-cert-allowed-hostname", "Comma-separated list of allowed SAN hostnames for client cert authentication.")
	f.Var(flags.NewStringsValue(""), "peer-cert-allowed-cn", "Comma-separated list of allowed CNs for inter-peer TLS authentication.")
	f.Var(flags.NewStringsValue(""), "peer-cert-allowed-hostname", "Comma-separated list of allowed SAN hostnames for inter-peer TLS authentication.")
	f.BoolVar(&c.PeerTLS.SkipClientSANVerify, "peer-skip-client-san-verification", false, "Skip verification of SAN field in client certificate for peer connections.")
	f.UintVar(&c.SelfSignedCertValidity, "self-signed-cert-validity", c.SelfSignedCertValidity, "The validity period of the client and peer certificates, unit is year")
	f.Var(flags.NewStringsValue(""), "cipher-suites", "Comma-separated list of supported TLS cipher suites between client/server and peers (empty will be auto-populated by Go).")
	f.StringVar(&c.TLSMinVersion, "tls-min-version", c.TLSMinVersion, "Minimum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3.")
	f.StringVar(&c.TLSMaxVersion, "tls-max-version", c.TLSMaxVersion, "Maximum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3 (empty defers to Go).")
	f.Var(flags.NewUniqueURLsWithExceptions("*", "*"), "cors", "Comma-separated white list of origins for CORS, or cross-origin resource sharing, (empty or * means allow all)")
	f.Var(flags.NewUniqueStringsValue("*"), "host-whitelist", "Comma-separated acceptable hostnames from HTTP client requests, if server is not secure (empty means allow all).")

	// auth
	f.StringVar(&c.AuthToken, "auth-token", c.AuthToken, "Specify auth token specific options.")
	f.UintVar(&c.BcryptCost, "bcrypt-cost", c.BcryptCost, "Specify bcrypt algorithm cost factor for auth password hashing.")
	f.UintVar(&c.AuthTokenTTL, "auth-token-ttl", c.AuthTokenTTL, "The lifetime in seconds of the auth token.")
	f.StringVar(&c.AuditLogPath, "audit-log-path", c.AuditLogPath, "File the audit log (auth changes, logins and auth refusals) is appended to, as JSON lines (default: the server log, logger \"audit\"). MetaStore only.")

	// HTTP, metrics, features
	f.BoolVar(&c.EnablePprof, "enable-pprof", false, "Enable runtime profiling data via HTTP server. Address is at client URL + \"/debug/pprof/\"")
	f.BoolVar(&c.EnableGRPCGateway, "enable-grpc-gateway", c.EnableGRPCGateway, "Enable GRPC gateway.")
	f.BoolVar(&c.EnableConsole, "enable-console", c.EnableConsole, "Serve the web console under /ui/ on the client HTTP port (every action it takes is a gRPC request to this member, checked and audited as one). MetaStore only.")
	f.StringVar(&c.Metrics, "metrics", c.Metrics, "Set level of detail for exported metrics, specify 'extensive' to include server side grpc histogram metrics")
	f.StringVar(&c.FeatureGates, "feature-gates", "", "A set of key=value pairs that describe server level feature gates for alpha/experimental features.")
	f.BoolVar(&c.EnableDistributedTracing, "enable-distributed-tracing", false, "Enable distributed tracing using OpenTelemetry Tracing.")
	f.StringVar(&c.DistributedTracingAddress, "distributed-tracing-address", c.DistributedTracingAddress, "Address for distributed tracing used for OpenTelemetry Tracing (if enabled with enable-distributed-tracing flag).")
	f.StringVar(&c.DistributedTracingServiceName, "distributed-tracing-service-name", c.DistributedTracingServiceName, "Configures service name for distributed tracing.")
	f.StringVar(&c.DistributedTracingInstanceID, "distributed-tracing-instance-id", "", "Configures service instance ID for distributed tracing.")
	f.IntVar(&c.DistributedTracingSamplingRate, "distributed-tracing-sampling-rate", 0, "Number of samples to collect per million spans for OpenTelemetry Tracing (if enabled with enable-distributed-tracing flag).")

	// checks and timers
	f.DurationVar(&c.CorruptCheckTime, "corrupt-check-time", c.CorruptCheckTime, "Duration of time between cluster corruption check passes.")
	f.DurationVar(&c.CompactHashCheckTime, "compact-hash-check-time", c.CompactHashCheckTime, "Duration of time between leader checks followers compaction hashes.")
	f.IntVar(&c.CompactionBatchLimit, "compaction-batch-limit", c.CompactionBatchLimit, "Sets the maximum revisions deleted in each compaction batch.")
	f.DurationVar(&c.CompactionSleepInterval, "compaction-sleep-interval", c.CompactionSleepInterval, "Sets the sleep interval between each compaction batch.")
	f.DurationVar(&c.WatchProgressNotifyInterval, "watch-progress-notify-interval", c.WatchProgressNotifyInterval, "Duration of periodic watch progress notifications.")
	f.DurationVar(&c.DowngradeCheckTime, "downgrade-check-time", c.DowngradeCheckTime, "Duration of time between two downgrade status checks.")
	f.DurationVar(&c.WarningApplyDuration, "warning-apply-duration", c.WarningApplyDuration, "Time duration after which a warning is generated if a request's apply takes more time.")
	f.DurationVar(&c.WarningUnaryRequestDuration, "warning-unary-request-duration", c.WarningUnaryRequestDuration, "Time duration after which a warning is generated if a unary request takes more time.")
	f.BoolVar(&c.MemoryMlock, "memory-mlock", c.MemoryMlock, "Enable to enforce etcd pages (in particular bbolt) to stay in RAM.")
	f.UintVar(&c.BootstrapDefragThresholdMegabytes, "bootstrap-defrag-threshold-megabytes", 0, "Enable the defrag during etcd server bootstrap on condition that it will free at least the provided threshold of disk space. Needs to be set to non-zero value to take effect.")

	// logging
	f.StringVar(&c.Logger, "logger", c.Logger, "Currently only supports 'zap' for structured logging.")
	f.Var(flags.NewUniqueStringsValue("default"), "log-outputs", "Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list of comma separated output targets.")
	f.StringVar(&c.LogLevel, "log-level", c.LogLevel, "Configures log level. Only supports debug, info, warn, error, panic, or fatal. Default 'info'.")
	f.StringVar(&c.LogFormat, "log-format", c.LogFormat, "Configures log format. Only supports json, console. Default is 'json'.")
	f.BoolVar(&c.EnableLogRotation, "enable-log-rotation", false, "Enable log rotation of a single log-outputs file target.")
	f.StringVar(&c.LogRotationConfigJSON, "log-rotation-config-json", c.LogRotationConfigJSON, "Configures log rotation if enabled with a JSON logger config. Default: MaxSize=100(MB), MaxAge=0(days,no limit), MaxBackups=0(no limit), LocalTime=false(UTC), Compress=false(gzip)")

	f.StringVar(&c.ConfigFile, "config-file", "", "Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored.")
	f.BoolVar(&fs.version, "version", false, "Print the version and exit.")
	for _, name := range legacyFlags {
		f.Var(&flags.IgnoredFlag{Name: name}, name, "")
	}
	return fs
}

// tlsFlags are one side's certificate flags: prefix "" for clients,
// "peer-" for peers.
func tlsFlags(f *flag.FlagSet, t *TLS, prefix string) {
	side := "client server"
	if prefix != "" {
		side = "peer server"
	}
	f.StringVar(&t.CertFile, prefix+"cert-file", "", "Path to the "+side+" TLS cert file.")
	f.StringVar(&t.KeyFile, prefix+"key-file", "", "Path to the "+side+" TLS key file.")
	f.StringVar(&t.ClientCertFile, prefix+"client-cert-file", "", "Path to an explicit peer client TLS cert file otherwise cert file will be used when client auth is required.")
	f.StringVar(&t.ClientKeyFile, prefix+"client-key-file", "", "Path to an explicit peer client TLS key file otherwise key file will be used when client auth is required.")
	f.BoolVar(&t.ClientCertAuth, prefix+"client-cert-auth", false, "Enable "+prefix+"client cert authentication.")
	f.StringVar(&t.TrustedCAFile, prefix+"trusted-ca-file", "", "Path to the "+side+" TLS trusted CA file.")
	if prefix == "" {
		f.StringVar(&t.CRLFile, "client-crl-file", "", "Path to the client certificate revocation list file.")
		f.BoolVar(&t.AutoTLS, "auto-tls", false, "Client TLS using generated certificates")
	} else {
		f.StringVar(&t.CRLFile, "peer-crl-file", "", "Path to the peer certificate revocation list file.")
		f.BoolVar(&t.AutoTLS, "peer-auto-tls", false, "Peer TLS using generated certificates")
	}
}

// fromFlags copies the list-valued flags into the Config and records
// which flags were given, after the command line and environment were
// applied.
func (fs *flagSet) fromFlags() {
	c := fs.c
	c.ListenPeerURLs = urlsFlag(fs.FlagSet, "listen-peer-urls")
	c.ListenClientURLs = urlsFlag(fs.FlagSet, "listen-client-urls")
	c.ListenClientHTTPURLs = urlsFlag(fs.FlagSet, "listen-client-http-urls")
	c.ListenMetricsURLs = urlsFlag(fs.FlagSet, "listen-metrics-urls")
	c.AdvertisePeerURLs = urlsFlag(fs.FlagSet, "initial-advertise-peer-urls")
	c.AdvertiseClientURLs = urlsFlag(fs.FlagSet, "advertise-client-urls")
	c.Discovery.Client.Endpoints = nilIfEmpty(flags.UniqueStringsFromFlag(fs.FlagSet, "discovery-endpoints"))
	c.CORS = flags.UniqueURLsMapFromFlag(fs.FlagSet, "cors")
	c.HostWhitelist = flags.UniqueStringsMapFromFlag(fs.FlagSet, "host-whitelist")
	c.ClientTLS.AllowedHostnames = nilIfEmpty(flags.StringsFromFlag(fs.FlagSet, "client-cert-allowed-hostname"))
	c.PeerTLS.AllowedCNs = nilIfEmpty(flags.StringsFromFlag(fs.FlagSet, "peer-cert-allowed-cn"))
	c.PeerTLS.AllowedHostnames = nilIfEmpty(flags.StringsFromFlag(fs.FlagSet, "peer-cert-allowed-hostname"))
	c.CipherSuites = nilIfEmpty(flags.StringsFromFlag(fs.FlagSet, "cipher-suites"))
	c.MaxConcurrentStreams = flags.Uint32FromFlag(fs.FlagSet, "max-concurrent-streams")
	c.LogOutputs = flags.UniqueStringsFromFlag(fs.FlagSet, "log-outputs")
	c.InitialClusterState = fs.clusterState.String()
	c.DiscoveryFallback = fs.fallback.String()
	c.V2Deprecation = fs.v2depr.String()
	fs.Visit(func(f *flag.Flag) { c.Explicit[f.Name] = true })

	// As etcd: listening on client URLs of one's own choosing with no
	// advertised ones is an error (Validate), not the default advertised.
	if c.Explicit["listen-client-urls"] && !c.Explicit["advertise-client-urls"] {
		c.AdvertiseClientURLs = nil
	}
	// Discovery finds the initial cluster: the default one (this member
	// alone) does not apply.
	if (c.DiscoverySRV != "" || c.DiscoverySRVName != "" || len(c.Discovery.Client.Endpoints) > 0) && !c.Explicit["initial-cluster"] {
		c.InitialCluster = ""
	}
}

// nilIfEmpty makes an empty list nil, as the file leaves a list it does
// not set: one configuration, one value, however it was given.
func nilIfEmpty(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	return l
}

// urlsFlag is the URLs a flag of etcd's UniqueURLs type holds, as strings.
func urlsFlag(fs *flag.FlagSet, name string) []string {
	var out []string
	for _, u := range flags.UniqueURLsFromFlag(fs, name) {
		out = append(out, u.String())
	}
	return out
}

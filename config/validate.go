package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/tlsutil"
	"go.etcd.io/etcd/pkg/v3/featuregate"
	"go.etcd.io/etcd/server/v3/features"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
)

// etcd's errors, word for word (scripts and operators match them).
var (
	ErrConflictBootstrapFlags = errors.New("multiple discovery or bootstrap flags are set. " +
		"Choose one of \"initial-cluster\", \"discovery-endpoints\" or \"discovery-srv\"")
	ErrUnsetAdvertiseClientURLsFlag = errors.New("--advertise-client-urls is required when --listen-client-urls is set explicitly")
)

// maxElectionMs is etcd's upper bound on --election-timeout.
const maxElectionMs = 50000

// Validate checks the configuration as etcd's Config.Validate does, in
// its order and with its messages, then MetaStore's own rules: its own
// settings' values, and that no setting asks for something MetaStore does
// not do (refused, naming the setting). lg gets etcd's warnings and a
// line for each setting that does not apply to MetaStore.
func (c *Config) Validate(lg *zap.Logger) error {
	if err := c.validateLogging(); err != nil {
		return err
	}
	for _, urls := range [][]string{c.ListenPeerURLs, c.ListenClientURLs, c.ListenClientHTTPURLs} {
		if err := checkBindURLs(urls); err != nil {
			return err
		}
	}
	if len(c.ListenClientHTTPURLs) == 0 {
		lg.Warn("Running http and grpc server on single port. This is not recommended for production.")
	}
	if err := checkBindURLs(c.ListenMetricsURLs); err != nil {
		return err
	}
	if err := checkHostURLs(c.AdvertisePeerURLs); err != nil {
		return fmt.Errorf(`--initial-advertise-peer-urls %q must be "host:port" (%w)`, strings.Join(c.AdvertisePeerURLs, ","), err)
	}
	if err := checkHostURLs(c.AdvertiseClientURLs); err != nil {
		return fmt.Errorf(`--advertise-client-urls %q must be in the format "host:port", "unix:/path/to/socket" or "unixs:/path/to/socket" (%w)`, strings.Join(c.AdvertiseClientURLs, ","), err)
	}
	if c.InitialClusterState != "new" && c.InitialClusterState != "existing" {
		return fmt.Errorf("unexpected clusterState %q", c.InitialClusterState)
	}
	bootstraps := 0
	for _, set := range []bool{c.InitialCluster != "", c.DiscoverySRV != "", len(c.Discovery.Client.Endpoints) > 0} {
		if set {
			bootstraps++
		}
	}
	if bootstraps > 1 {
		return ErrConflictBootstrapFlags
	}
	if (c.Discovery.Token != "") != (len(c.Discovery.Client.Endpoints) > 0) {
		return errors.New("both --discovery-token and --discovery-endpoints must be set")
	}
	for _, ep := range c.Discovery.Client.Endpoints {
		if strings.TrimSpace(ep) == "" {
			return errors.New("--discovery-endpoints must not contain empty endpoints")
		}
	}
	if c.HeartbeatMs == 0 {
		return fmt.Errorf("--heartbeat-interval must be >0 (set to %dms)", c.HeartbeatMs)
	}
	if c.ElectionMs == 0 {
		return fmt.Errorf("--election-timeout must be >0 (set to %dms)", c.ElectionMs)
	}
	if 5*c.HeartbeatMs > c.ElectionMs {
		return fmt.Errorf("--election-timeout[%vms] should be at least as 5 times as --heartbeat-interval[%vms]", c.ElectionMs, c.HeartbeatMs)
	}
	if c.ElectionMs > maxElectionMs {
		return fmt.Errorf("--election-timeout[%vms] is too long, and should be set less than %vms", c.ElectionMs, maxElectionMs)
	}
	if c.ListenClientURLs != nil && c.AdvertiseClientURLs == nil {
		return ErrUnsetAdvertiseClientURLsFlag
	}
	switch c.AutoCompactionMode {
	case "periodic", "revision":
	case "":
		return errors.New("undefined auto-compaction-mode")
	default:
		return fmt.Errorf("unknown auto-compaction-mode %q", c.AutoCompactionMode)
	}
	gates, err := c.Gates()
	if err != nil {
		return err
	}
	if !gates.Enabled(features.LeaseCheckpointPersist) && gates.Enabled(features.LeaseCheckpoint) {
		lg.Warn("Detected that checkpointing is enabled without persistence. Consider enabling feature gate LeaseCheckpointPersist")
	}
	if gates.Enabled(features.LeaseCheckpointPersist) && !gates.Enabled(features.LeaseCheckpoint) {
		return errors.New("enabling feature gate LeaseCheckpointPersist requires enabling feature gate LeaseCheckpoint")
	}
	if c.CompactHashCheckTime <= 0 {
		return fmt.Errorf("--compact-hash-check-time must be >0 (set to %v)", c.CompactHashCheckTime)
	}
	if c.Name == DefaultName {
		lg.Warn("it isn't recommended to use default name, please set a value for --name. "+
			"Note that etcd might run into issue when multiple members have the same default name", zap.String("name", c.Name))
	}
	minV, err := tlsutil.GetTLSVersion(c.TLSMinVersion)
	if err != nil {
		return err
	}
	maxV, err := tlsutil.GetTLSVersion(c.TLSMaxVersion)
	if err != nil {
		return err
	}
	if maxV != 0 && minV > maxV {
		return fmt.Errorf("min version (%s) is greater than max version (%s)", c.TLSMinVersion, c.TLSMaxVersion)
	}
	if minV == tls.VersionTLS13 && len(c.CipherSuites) > 0 {
		return errors.New("cipher suites cannot be configured when only TLS1.3 is enabled")
	}
	if c.DiscoveryFallback == "proxy" {
		return fmt.Errorf("v2 proxy is deprecated, and --discovery-fallback can't be configured as %q", "proxy")
	}
	return c.validateMetaStore(lg)
}

// validateMetaStore is what MetaStore checks beyond etcd.
func (c *Config) validateMetaStore(lg *zap.Logger) error {
	// etcd takes any --metrics other than "extensive" as basic; a typo
	// that silently drops the histograms an operator asked for is refused.
	if c.Metrics != "basic" && c.Metrics != "extensive" {
		return fmt.Errorf("invalid --metrics %q; want basic or extensive", c.Metrics)
	}
	if c.Storage != "pebble" && c.Storage != "memory" {
		return fmt.Errorf("invalid --storage %q; want pebble or memory", c.Storage)
	}
	if int(c.BcryptCost) < bcrypt.MinCost || int(c.BcryptCost) > bcrypt.MaxCost {
		return fmt.Errorf("invalid --bcrypt-cost %d; want %d to %d", c.BcryptCost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	if kind, _, _ := strings.Cut(c.AuthToken, ","); kind != "simple" && kind != "jwt" {
		return fmt.Errorf("unknown --auth-token %q; want simple or jwt,...", c.AuthToken)
	}
	if c.MemoryLimitBytes < 0 {
		return fmt.Errorf("--memory-limit-bytes must be >= 0 (set to %d)", c.MemoryLimitBytes)
	}
	if c.LeaseCheckpointInterval <= 0 {
		return fmt.Errorf("--lease-checkpoint-interval must be >0 (set to %v)", c.LeaseCheckpointInterval)
	}
	gates, _ := c.Gates()
	for _, s := range notBuilt {
		if s.set(c, gates) {
			return fmt.Errorf("--%s is not supported by MetaStore (%s); remove it to start", s.name, s.why)
		}
	}
	var names []string
	for name := range c.Explicit {
		if _, ok := notApplicable[name]; ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		lg.Info("setting does not apply to MetaStore; accepted and without effect",
			zap.String("setting", name), zap.String("why", notApplicable[name]))
	}
	return nil
}

// Gates is --feature-gates parsed by etcd's own feature gate (the same
// names, defaults and errors).
func (c *Config) Gates() (featuregate.FeatureGate, error) {
	g := features.NewDefaultServerFeatureGate("metastore", nil)
	if err := g.(featuregate.MutableFeatureGate).Set(c.FeatureGates); err != nil {
		return nil, err
	}
	return g, nil
}

// notApplicable are etcd settings about etcd's own files and bbolt
// internals, which MetaStore does not have: any value is accepted (an
// etcd configuration must start), and one that is set is logged with why
// it has no effect.
var notApplicable = map[string]string{
	"max-snapshots":                        "MetaStore keeps no snapshot files; a snapshot for a follower is a pebble checkpoint removed once sent",
	"max-wals":                             "the raft log's WAL segments (member/raftlog) are removed as soon as its truncation passes every entry in them",
	"backend-bbolt-freelist-type":          "MetaStore's backend is pebble, not bbolt",
	"backend-batch-interval":               "pebble commits every applied batch; each write is acknowledged after the fsync covering it",
	"backend-batch-limit":                  "pebble commits every applied batch; each write is acknowledged after the fsync covering it",
	"compaction-batch-limit":               "MetaStore's compaction runs in the background in small steps that never hold requests",
	"compaction-sleep-interval":            "MetaStore's compaction runs in the background in small steps that never hold requests",
	"bootstrap-defrag-threshold-megabytes": "MetaStore reclaims space online; there is no stop-the-world defragmentation to run at boot",
	"downgrade-check-time":                 "MetaStore does not run etcd's downgrade process",
	"distributed-tracing-address":          "used only with --enable-distributed-tracing, which MetaStore does not support",
	"distributed-tracing-service-name":     "used only with --enable-distributed-tracing, which MetaStore does not support",
	"distributed-tracing-instance-id":      "used only with --enable-distributed-tracing, which MetaStore does not support",
	"distributed-tracing-sampling-rate":    "used only with --enable-distributed-tracing, which MetaStore does not support",
	"v2-deprecation":                       "etcd enforces its default whatever is given; so does MetaStore",
	"compact-hash-check-time":              "used only with --feature-gates=CompactHashCheck=true, which MetaStore does not support",
}

// notBuilt are settings MetaStore does not implement: left at etcd's
// default they change nothing; any other value refuses the start, so that
// a configuration never runs with a meaning it did not ask for.
var notBuilt = []struct {
	name string
	set  func(*Config, featuregate.FeatureGate) bool
	why  string
}{
	{"memory-mlock", func(c *Config, _ featuregate.FeatureGate) bool { return c.MemoryMlock }, "pebble's block cache is not locked in RAM"},
	{"enable-distributed-tracing", func(c *Config, _ featuregate.FeatureGate) bool { return c.EnableDistributedTracing }, "no OpenTelemetry tracing"},
	{"discovery-srv", func(c *Config, _ featuregate.FeatureGate) bool { return c.DiscoverySRV != "" }, "no DNS SRV discovery; use --initial-cluster or --discovery-token with --discovery-endpoints"},
	{"discovery-srv-name", func(c *Config, _ featuregate.FeatureGate) bool { return c.DiscoverySRVName != "" }, "no DNS SRV discovery"},
	{"raft-read-timeout", func(c *Config, _ featuregate.FeatureGate) bool { return c.RaftReadTimeout != 5*time.Second }, "peer connections use their own deadlines"},
	{"raft-write-timeout", func(c *Config, _ featuregate.FeatureGate) bool { return c.RaftWriteTimeout != 5*time.Second }, "peer connections use their own deadlines"},
	{"feature-gates=CompactHashCheck=true", func(_ *Config, g featuregate.FeatureGate) bool { return g.Enabled(features.CompactHashCheck) }, "no compaction hash check"},
	{"feature-gates=SetMemberLocalAddr=true", func(_ *Config, g featuregate.FeatureGate) bool { return g.Enabled(features.SetMemberLocalAddr) }, "peers are dialled from any local address"},
	{"feature-gates=PriorityRequest=true", func(_ *Config, g featuregate.FeatureGate) bool { return g.Enabled(features.PriorityRequest) }, "no request priorities"},
}

// checkBindURLs wants each listen URL's host to be an IP or localhost,
// as etcd (a name could resolve to anything).
func checkBindURLs(urls []string) error {
	for _, s := range urls {
		host, unix, err := urlHost(s)
		if err != nil {
			return err
		}
		if !unix && host != "localhost" && net.ParseIP(host) == nil {
			return fmt.Errorf("expected IP in URL for binding (%s)", s)
		}
	}
	return nil
}

// checkHostURLs wants each advertised URL to name a host and port.
func checkHostURLs(urls []string) error {
	for _, s := range urls {
		host, unix, err := urlHost(s)
		if err != nil {
			return err
		}
		if !unix && host == "" {
			return fmt.Errorf("unexpected empty host (%s)", s)
		}
	}
	return nil
}

// urlHost is the host of a host:port URL; unix sockets have none.
func urlHost(s string) (host string, unix bool, err error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", false, err
	}
	if u.Scheme == "unix" || u.Scheme == "unixs" {
		return "", true, nil
	}
	host, _, err = net.SplitHostPort(u.Host)
	return host, false, err
}

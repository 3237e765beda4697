package main

import (
	"strings"
	"time"

	"go.etcd.io/etcd/pkg/v3/featuregate"
	"go.etcd.io/etcd/server/v3/features"
	"go.uber.org/zap"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/authactor"
	"github.com/metastore/metastore/compactor"
	"github.com/metastore/metastore/config"
	"github.com/metastore/metastore/discovery"
	"github.com/metastore/metastore/node"
)

// retentionError is an auto-compaction retention etcd refuses only when
// its server starts (and so under "discovery failed", its words).
type retentionError struct{ error }

// nodeConfig turns a validated configuration into the node's: URL
// defaults resolved as etcd resolves them, TLS, tokens and retention
// parsed by the packages that own them.
func nodeConfig(c *config.Config, lg, audit *zap.Logger) (node.Config, error) {
	initial := c.InitialCluster
	if initial == "" && c.Discovery.Token == "" {
		initial = c.Name + "=" + strings.Join(c.AdvertisePeerURLs, ",")
	}
	cluster, err := node.ParseInitialCluster(initial)
	if err != nil {
		return node.Config{}, err
	}
	clientTLS, peerTLS := tlsFiles(c.ClientTLS), tlsFiles(c.PeerTLS)
	if len(c.CipherSuites) > 0 {
		ids, err := node.ParseCipherSuites(c.CipherSuites)
		if err != nil {
			return node.Config{}, err
		}
		clientTLS.CipherSuites, peerTLS.CipherSuites = ids, ids
	}
	if clientTLS.MinVersion, clientTLS.MaxVersion, err = node.ParseTLSVersions(c.TLSMinVersion, c.TLSMaxVersion, clientTLS.CipherSuites); err != nil {
		return node.Config{}, err
	}
	peerTLS.MinVersion, peerTLS.MaxVersion = clientTLS.MinVersion, clientTLS.MaxVersion
	var jwt *authactor.JWTTokens
	if kind, opts, _ := strings.Cut(c.AuthToken, ","); kind == "jwt" {
		if jwt, err = authactor.NewJWTTokens(opts, actors.RealClock); err != nil {
			return node.Config{}, err
		}
	}
	retention, err := compactor.ParseRetention(c.AutoCompactionMode, c.AutoCompactionRetention)
	if err != nil {
		return node.Config{}, retentionError{err}
	}
	gates, err := c.Gates()
	if err != nil {
		return node.Config{}, err
	}
	return node.Config{
		Name: c.Name, DataDir: c.DataDir, InMemory: c.Storage == "memory", WALDir: c.WALDir, UnsafeNoFsync: c.UnsafeNoFsync, ForceNewCluster: c.ForceNewCluster,
		ListenClientURLs: c.ListenClientURLs, AdvertiseClientURLs: c.AdvertiseClientURLs,
		ListenClientHTTPURLs: c.ListenClientHTTPURLs, ListenMetricsURLs: c.ListenMetricsURLs,
		ExtensiveMetrics: c.Metrics == "extensive", EnablePprof: c.EnablePprof, EnableGRPCGateway: c.EnableGRPCGateway,
		EnableConsole: c.EnableConsole, CORS: c.CORS, HostWhitelist: c.HostWhitelist,
		InitialAdvertisePeerURLs: c.AdvertisePeerURLs, InitialCluster: cluster, ListenPeerURLs: c.ListenPeerURLs,
		InitialClusterToken: c.InitialClusterToken, InitialClusterState: c.InitialClusterState,
		SnapshotCount: c.SnapshotCount, SnapshotCatchUpEntries: c.SnapshotCatchUpEntries,
		StrictReconfigCheck: c.StrictReconfigCheck, MaxLearners: c.MaxLearners,
		HeartbeatInterval: time.Duration(c.HeartbeatMs) * time.Millisecond, DisablePreVote: !c.PreVote,
		DisableTickAdvance: !c.InitialElectionTickAdvance,
		ElectionTimeout:    time.Duration(c.ElectionMs) * time.Millisecond,
		QuotaBackendBytes:  c.QuotaBackendBytes, DefragRateBytes: c.DefragRateBytes,
		MaxRequestBytes: int(c.MaxRequestBytes), MaxTxnOps: int(c.MaxTxnOps),
		MaxRangeBytesInFlight:       c.MaxRangeBytesInFlight,
		WatchProgressNotifyInterval: c.WatchProgressNotifyInterval,
		WarningApplyDuration:        c.WarningApplyDuration,
		WarningUnaryRequestDuration: c.WarningUnaryRequestDuration,
		BcryptCost:                  int(c.BcryptCost),
		AuthTokenTTL:                time.Duration(c.AuthTokenTTL) * time.Second,
		Audit:                       audit,
		JWT:                         jwt,
		InitialCorruptCheck:         gates.Enabled(features.InitialCorruptCheck),
		LeaseCheckpointInterval:     leaseCheckpointInterval(c, gates),
		FeatureGate:                 gates,
		CorruptCheckTime:            c.CorruptCheckTime,
		ClientTLS:                   clientTLS, PeerTLS: peerTLS,
		PeerSkipClientSANVerify: c.PeerTLS.SkipClientSANVerify, SelfSignedCertValidity: c.SelfSignedCertValidity,
		AutoCompactionMode:      c.AutoCompactionMode,
		AutoCompactionRetention: retention,
		Logger:                  lg,
		MaxConcurrentStreams:    c.MaxConcurrentStreams,
		GRPCKeepAliveMinTime:    c.GRPCKeepAliveMinTime, GRPCKeepAliveInterval: c.GRPCKeepAliveInterval,
		GRPCKeepAliveTimeout: c.GRPCKeepAliveTimeout,
		SocketReusePort:      c.SocketOpts.ReusePort, SocketReuseAddress: c.SocketOpts.ReuseAddress,
		Discovery: discoveryConfig(c.Discovery),
	}, nil
}

// leaseCheckpointInterval is how often the leader checkpoints leases: only
// with --feature-gates=LeaseCheckpoint=true (0: never).
func leaseCheckpointInterval(c *config.Config, gates featuregate.FeatureGate) time.Duration {
	if !gates.Enabled(features.LeaseCheckpoint) {
		return 0
	}
	return c.LeaseCheckpointInterval
}

func tlsFiles(t config.TLS) node.TLSFiles {
	return node.TLSFiles{
		CertFile: t.CertFile, KeyFile: t.KeyFile, ClientCertFile: t.ClientCertFile, ClientKeyFile: t.ClientKeyFile,
		TrustedCAFile: t.TrustedCAFile, CRLFile: t.CRLFile, ClientCertAuth: t.ClientCertAuth, AutoTLS: t.AutoTLS,
		AllowedCNs: t.AllowedCNs, AllowedHostnames: t.AllowedHostnames,
	}
}

// discoveryConfig is the --discovery-* settings for the discovery client
// (nil: the member bootstraps from --initial-cluster).
func discoveryConfig(d config.Discovery) *discovery.Config {
	if d.Token == "" {
		return nil
	}
	return &discovery.Config{
		Endpoints: d.Client.Endpoints, Token: d.Token,
		DialTimeout: d.Client.DialTimeout, RequestTimeout: d.Client.RequestTimeout,
		KeepAliveTime: d.Client.KeepAliveTime, KeepAliveTimeout: d.Client.KeepAliveTimeout,
		InsecureTransport: d.Client.Secure.InsecureTransport, InsecureSkipVerify: d.Client.Secure.InsecureSkipVerify,
		CertFile: d.Client.Secure.Cert, KeyFile: d.Client.Secure.Key, CAFile: d.Client.Secure.Cacert,
		User: d.Client.Auth.Username, Password: d.Client.Auth.Password,
	}
}

// liveOf is the part of c a running member can take (node.Reconfigure).
func liveOf(c *config.Config) (node.Live, error) {
	retention, err := compactor.ParseRetention(c.AutoCompactionMode, c.AutoCompactionRetention)
	if err != nil {
		return node.Live{}, err
	}
	return node.Live{
		AuthTokenTTL:      time.Duration(c.AuthTokenTTL) * time.Second,
		QuotaBackendBytes: c.QuotaBackendBytes, DefragRateBytes: c.DefragRateBytes,
		AutoCompactionMode: c.AutoCompactionMode, AutoCompactionRetention: retention,
		WarningApplyDuration: c.WarningApplyDuration, CorruptCheckTime: c.CorruptCheckTime,
		WarningUnaryRequestDuration: c.WarningUnaryRequestDuration,
	}, nil
}

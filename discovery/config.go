// Package discovery bootstraps a new cluster through an etcd v3 discovery
// service, as etcd does with --discovery-token and --discovery-endpoints:
// any etcd-API cluster (etcd, or MetaStore) holds, under
// /_etcd/registry/<token>/, the expected size of the new cluster
// (_config/size, put there by the operator) and one key per member that
// registered (members/<member id in hex>, value "name=peerURL,..."). Each
// member registers itself, waits until size members have, and bootstraps
// with the first size of them (by creation revision) as its initial
// cluster. A member beyond size is refused with etcd's ErrFullCluster.
//
// Keys, values, retries and log lines are etcd v3.7's
// (server/etcdserver/api/v3discovery), so MetaStore and etcd members
// discover each other's registrations alike.
package discovery

import (
	"errors"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcd's defaults for the --discovery-* timeouts.
const (
	DefaultDialTimeout      = 2 * time.Second
	DefaultRequestTimeout   = 5 * time.Second
	DefaultKeepAliveTime    = 2 * time.Second
	DefaultKeepAliveTimeout = 6 * time.Second
)

// Config is how to reach the discovery service and which cluster to join
// there: etcd's --discovery-* flags. A zero duration means etcd's default.
type Config struct {
	// Endpoints (--discovery-endpoints) are the service's client
	// endpoints (host:port, or http(s)://host:port).
	Endpoints []string
	// Token (--discovery-token) names the new cluster in the service. It
	// also takes the place of --initial-cluster-token in the member and
	// cluster ids, as in etcd.
	Token string

	DialTimeout      time.Duration // --discovery-dial-timeout
	RequestTimeout   time.Duration // --discovery-request-timeout: each Get and Put
	KeepAliveTime    time.Duration // --discovery-keepalive-time
	KeepAliveTimeout time.Duration // --discovery-keepalive-timeout

	// InsecureTransport (--discovery-insecure-transport; etcd's default is
	// true) talks plain gRPC to host:port endpoints unless a certificate or
	// CA is given; https:// endpoints use TLS whatever it says.
	InsecureTransport bool
	// InsecureSkipVerify is --discovery-insecure-skip-tls-verify.
	InsecureSkipVerify bool
	CertFile           string // --discovery-cert: client certificate
	KeyFile            string // --discovery-key
	CAFile             string // --discovery-cacert: CA bundle for the service's certificate

	// User and Password (--discovery-user, --discovery-password)
	// authenticate when the service has auth enabled. As in etcd, the user
	// is taken whole: "name:password" in --discovery-user is not split.
	User, Password string

	// MaxRetries bounds the retries of a request the service failed
	// (0: etcd's 2^32-1, i.e. for ever). Not an etcd flag: for tests and
	// embedders that must not wait for ever.
	MaxRetries uint
}

// Validate makes etcd's checks of the discovery flags (etcd refuses them
// when it verifies its flags, before starting).
func (c *Config) Validate() error {
	if (c.Token != "") != (len(c.Endpoints) > 0) {
		return errors.New("both --discovery-token and --discovery-endpoints must be set")
	}
	for _, ep := range c.Endpoints {
		if strings.TrimSpace(ep) == "" {
			return errors.New("--discovery-endpoints must not contain empty endpoints")
		}
	}
	return nil
}

// clientSpec is the clientv3 configuration etcd builds from the flags.
func (c *Config) clientSpec() *clientv3.ConfigSpec {
	orDefault := func(d, def time.Duration) time.Duration {
		if d == 0 {
			return def
		}
		return d
	}
	return &clientv3.ConfigSpec{
		Endpoints:        c.Endpoints,
		DialTimeout:      orDefault(c.DialTimeout, DefaultDialTimeout),
		RequestTimeout:   orDefault(c.RequestTimeout, DefaultRequestTimeout),
		KeepAliveTime:    orDefault(c.KeepAliveTime, DefaultKeepAliveTime),
		KeepAliveTimeout: orDefault(c.KeepAliveTimeout, DefaultKeepAliveTimeout),
		Secure: &clientv3.SecureConfig{
			Cert: c.CertFile, Key: c.KeyFile, Cacert: c.CAFile,
			InsecureTransport: c.InsecureTransport, InsecureSkipVerify: c.InsecureSkipVerify,
		},
		Auth: &clientv3.AuthConfig{Username: c.User, Password: c.Password},
	}
}

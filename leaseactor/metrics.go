package leaseactor

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastore/metastore/metrics"
)

// The lease families, under etcd's names. Grants and revokes are counted
// by every member's Lessor as the store applies them (etcd counts them in
// its lessor's apply too); renewals and expiries only where they happen,
// on the primary.
var (
	leaseGranted = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd_debugging", Subsystem: "lease", Name: "granted_total",
		Help: "The total number of granted leases.",
	})
	leaseRevoked = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd_debugging", Subsystem: "lease", Name: "revoked_total",
		Help: "The total number of revoked leases.",
	})
	leaseRenewed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd_debugging", Subsystem: "lease", Name: "renewed_total",
		Help: "The number of renewed leases seen by the leader.",
	})
	// leaseTTLs are the granted TTLs in seconds (after the minimum TTL
	// was applied).
	leaseTTLs = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd_debugging", Subsystem: "lease", Name: "ttl_total",
		Help:    "Bucketed histogram of lease TTLs.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 24),
	})
	// leaseRenewUnconfirmed counts keep-alives refused with "not a primary
	// lessor": they arrived at the primary, but no quorum round begun
	// after them confirmed its leadership in the same term (a leader cut
	// off from its peers, or deposed meanwhile).
	leaseRenewUnconfirmed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "metastore_lease_renew_unconfirmed_total",
		Help: "Lease keep-alives refused because this member's leadership was not confirmed by a quorum round.",
	})
	// leaseLoadFailures counts the Lessor's failed reads of every lease
	// from pebble (at its start, then at each check until one succeeds):
	// meanwhile it is not primary and no lease expires.
	leaseLoadFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "metastore_lease_load_failures_total",
		Help: "Failed reads of the leases by the lessor; until one succeeds it expires no lease.",
	})
	// leaseCheckpointsProposed counts the lease checkpoints this member
	// proposed as primary (--feature-gates=LeaseCheckpoint=true): the
	// remaining TTLs it recorded, and the clears of keep-alives (etcd has
	// no such counter).
	leaseCheckpointsProposed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "metastore_lease_checkpoints_proposed_total",
		Help: "Lease checkpoints (remaining TTLs, and their clears by keep-alives) this member proposed as the primary lessor.",
	})
	// leaseCheckpointsApplied counts the lease checkpoints this member's
	// store applied to a lease that exists (every member, from raft).
	leaseCheckpointsApplied = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "metastore_lease_checkpoints_applied_total",
		Help: "Lease checkpoints applied to an existing lease: its remaining TTL recorded, or cleared by a keep-alive.",
	})
	// leaseExpired counts the leases this member revoked because they
	// expired: counted when the revoke it proposed is applied.
	leaseExpired = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd_debugging", Subsystem: "server", Name: "lease_expired_total",
		Help: "The total number of expired leases.",
	})
)

func init() {
	metrics.MustRegister(leaseGranted, leaseRevoked, leaseRenewed, leaseTTLs, leaseExpired, leaseRenewUnconfirmed, leaseLoadFailures,
		leaseCheckpointsProposed, leaseCheckpointsApplied)
}

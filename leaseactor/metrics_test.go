package leaseactor_test

import (
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/testkit"
)

// count is family name's only sample (a counter's value, a histogram's
// count), -1 when there is none.
func count(s testkit.Scrape, name string) float64 {
	if v, ok := s.Value(name); ok {
		return v
	}
	return -1
}

// Grants (with their TTLs), renewals, revokes and the revokes of expired
// leases are counted as etcd counts them.
func TestMetricsCountLeases(t *testing.T) {
	reg := testkit.Registry(t)
	h := newHarness(t, nil)
	before := testkit.Gather(t, reg)
	h.grant(1, 10)
	h.grant(2, 100)
	if r := h.renew(2); r.Err != nil {
		t.Fatal(r.Err)
	}
	h.apply(&pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 2}}) // a client's revoke
	h.advance(11 * time.Second)                                                  // lease 1 expires
	if ids := h.revokes(); fmt.Sprint(ids) != "[1]" {
		t.Fatalf("revokes = %v", ids)
	}
	h.apply(&pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 1}})
	after := testkit.Gather(t, reg)
	for name, want := range map[string]float64{
		"etcd_debugging_lease_granted_total":        2,
		"etcd_debugging_lease_ttl_total":            2,
		"etcd_debugging_lease_renewed_total":        1,
		"etcd_debugging_lease_revoked_total":        2,
		"etcd_debugging_server_lease_expired_total": 1,
	} {
		if got := count(after, name) - count(before, name); got != want {
			t.Errorf("%s grew by %v, want %v", name, got, want)
		}
	}
	if sum := after.Sum("etcd_debugging_lease_ttl_total") - before.Sum("etcd_debugging_lease_ttl_total"); sum != 110 {
		t.Errorf("lease TTLs observed sum to %v, want 110", sum)
	}
}

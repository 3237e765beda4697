//go:build linux

package faults

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestLeaseSurvivesDeposedLeaderResuming: a lease kept alive without a
// gap through a follower while the leader is paused (SIGSTOP) for longer
// than its TTL must survive the old leader's SIGCONT. Found by TestPauses
// (docs/reliability.md, "Processes, network and pauses"): the deposed
// leader's Lessor, still primary in its own view for the moment after it
// resumes, found the lease expired by its own clock and proposed its
// revoke, which the new leader committed. Fixed as etcd does it (#15247):
// the Lessor revokes, and renews, only after a quorum round confirms its
// leadership. It is a race (the old leader must tick its Lessor before it
// hears of the new term), so the test pauses leaders ten times; it failed
// in the first or second round of each of five runs before the fix. About
// 100 s: it runs with the long suite (make test-faults).
func TestLeaseSurvivesDeposedLeaderResuming(t *testing.T) {
	if os.Getenv(longEnv) != "long" {
		t.Skipf("about 100 s; runs with %s=long (make test-faults)", longEnv)
	}
	c := startCluster(t)
	c.keepLogs(artifacts(t))
	clk := clock{start: time.Now()}
	for round := range 10 {
		lead, err := c.leader(recoverWithin)
		if err != nil {
			t.Fatal(err)
		}
		follower := c.others(lead)[0]
		cli := newClient(t, c.members[follower].Endpoint())
		ctx := context.Background()
		life := &leaseLife{keeper: c.name(follower)}
		sent := clk.now()
		g, err := cli.Grant(ctx, leaseTTL)
		if err != nil {
			t.Fatal(err)
		}
		life.id, life.key = g.ID, "repro/lease"
		life.granted = append(life.granted, renewal{sent: sent, ttl: g.TTL})
		if _, err := cli.Put(ctx, life.key, "x", clientv3.WithLease(g.ID)); err != nil {
			t.Fatal(err)
		}
		life.putAt = clk.now()

		// Keep it alive through the follower, twice a second, while the
		// leader sleeps for longer than the TTL and a little after.
		stop := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			for {
				select {
				case <-stop:
					done <- nil
					return
				case <-time.After(500 * time.Millisecond):
				}
				sent := clk.now()
				kctx, cancel := context.WithTimeout(ctx, time.Second)
				r, err := cli.KeepAliveOnce(kctx, g.ID)
				cancel()
				if err == nil {
					life.granted = append(life.granted, renewal{sent: sent, ttl: r.TTL})
				}
			}
		}()
		if err := c.pause(lead); err != nil {
			t.Fatal(err)
		}
		time.Sleep((leaseTTL + 3) * time.Second)
		if err := c.resume(lead); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		close(stop)
		<-done

		got, err := cli.Get(ctx, life.key)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Kvs) == 0 {
			life.gone = append(life.gone, clk.now())
		}
		if errs := checkLeases([]*leaseLife{life}, clk); len(errs) > 0 {
			// Each member counts, when a revoke is applied, the leases its
			// own Lessor had found expired: the paused one should have none.
			t.Fatalf("round %d, %s paused: %v\nleases each member's Lessor expired (%s was paused):%s",
				round, c.name(lead), errors.Join(errs...), c.members[lead].Endpoint(),
				metricLines(c.endpoints(), "etcd_debugging_server_lease_expired_total"))
		}
		if _, err := cli.Revoke(ctx, g.ID); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: the lease survived %s's pause", round, c.name(lead))
	}
}

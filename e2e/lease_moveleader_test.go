package e2e

import (
	"context"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// After a leadership transfer every member answers a lease's TimeToLive
// (the new leader itself, followers by asking it), and the new leader
// expires the lease when its TTL runs out.
func TestLeaseAfterMoveLeader(t *testing.T) {
	eachKind(t, func(t *testing.T, kind Kind) {
		servers := StartCluster(t, kind, 3)
		lead := waitLeader(t, servers, 10*time.Second)
		byName, _ := memberIDs(t, servers[0])
		target := (lead + 1) % 3
		cli := servers[lead].Client(t)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		l, err := cli.Grant(ctx, 6)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Put(ctx, "leased", "x", clientv3.WithLease(l.ID)); err != nil {
			t.Fatal(err)
		}
		if out := ctlOut(t, []string{servers[lead].Endpoint()}, "move-leader", strconv.FormatUint(byName[servers[target].Name], 16)); !containsLine(out, "Leadership transferred") {
			t.Fatalf("move-leader: %s", out)
		}
		if got := waitLeader(t, servers, 10*time.Second); got != target {
			t.Fatalf("leader is %s, want %s", servers[got].Name, servers[target].Name)
		}
		for _, s := range servers {
			c := s.Client(t)
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			r, err := c.TimeToLive(rctx, l.ID)
			rcancel()
			if err != nil || r.TTL <= 0 {
				t.Errorf("%s: TimeToLive after move-leader: %+v, %v", s.Name, r, err)
			}
		}
		// The new leader expires it: the key goes.
		deadline := time.Now().Add(20 * time.Second)
		for {
			g, err := cli.Get(ctx, "leased")
			if err == nil && len(g.Kvs) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("leased key still there 20 s after the lease's 6 s TTL: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

func containsLine(out, s string) bool {
	for i := 0; i+len(s) <= len(out); i++ {
		if out[i:i+len(s)] == s {
			return true
		}
	}
	return false
}

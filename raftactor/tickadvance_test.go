package raftactor_test

import (
	"fmt"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/metastore/metastore/raftactor"
)

// A starting member whose peer connections are up fast-forwards its
// election clock to two ticks short of the timeout (etcd's initial
// election tick advance): the first leader is elected within a couple of
// ticks past the plain election timeout, whatever the randomized
// timeouts; --initial-election-tick-advance=false skips it. Both say so
// in etcd's words.
func TestInitialElectionTickAdvance(t *testing.T) {
	for _, disable := range []bool{false, true} {
		t.Run(fmt.Sprintf("disabled=%v", disable), func(t *testing.T) {
			core, logs := observer.New(zap.InfoLevel)
			c := startClusterWith(t, func(i int) string { return fmt.Sprintf("http://n%d", i+1) }, func(cfg *raftactor.Config) {
				cfg.ActivePeers = func() int { return 2 }
				cfg.DisableTickAdvance = disable
				cfg.Logger = zap.New(core)
			})
			elected := func() bool {
				for _, n := range c.nodes {
					if n.view.Load().Lead != 0 {
						return true
					}
				}
				return false
			}
			if !disable {
				// Advanced to elecTicks-2, a member campaigns within 2..elecTicks+1
				// more ticks (randomized timeout in [elecTicks, 2*elecTicks)).
				c.tickUntil("a leader", elecTicks+2, elected)
			} else {
				c.tickUntil("a leader", 2*elecTicks+2, elected)
			}
			forwarded := logs.FilterMessage("initialized peer connections; fast-forwarding election ticks").All()
			skipped := logs.FilterMessage("skipping initial election tick advance").All()
			if disable {
				if len(forwarded) != 0 || len(skipped) != len(clusterIDs) {
					t.Fatalf("disabled: %d fast-forward lines, %d skip lines", len(forwarded), len(skipped))
				}
				return
			}
			if len(forwarded) != len(clusterIDs) || len(skipped) != 0 {
				t.Fatalf("%d fast-forward lines, %d skip lines; want one of the first per member", len(forwarded), len(skipped))
			}
			if got := forwarded[0].ContextMap()["forward-ticks"]; got != int64(elecTicks-2) {
				t.Errorf("forward-ticks %v, want %d", got, elecTicks-2)
			}
		})
	}
}

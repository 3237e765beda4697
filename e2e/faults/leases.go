//go:build linux

package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Lease keepers: each grants a lease, attaches a key to it, keeps it
// alive with KeepAliveOnce about every second, and looks at the key with a
// linearizable Get between keep-alives; after a while it revokes the lease
// and starts over.
//
// What must hold: a lease does not expire before the TTL its leader
// granted or renewed. A renewal answered with TTL t for a request sent at
// s was made by the leader after s, so the lease lives at least until
// s+t (leader changes only extend it). Its key is deleted only when it
// ends, so a linearizable Get that returned at g < s+t and found the key
// gone, with no revoke asked before g, is a lease ended early — by an
// early expiry, or by a renewal answered for a lease already gone (a
// stale leader renewing what the real one has revoked).

const leaseTTL = 4 // seconds; above the minimum TTL of 1.5 election timeouts

// leaseLife is one lease as its keeper saw it. Times are clock.now().
type leaseLife struct {
	keeper string
	id     clientv3.LeaseID
	key    string
	// granted holds, for the grant and each keep-alive that got a TTL,
	// the time its request was sent plus that TTL: the lease must live
	// until then.
	granted []int64
	putAt   int64 // when the key's put returned (0: never acknowledged)
	revoke  int64 // when a revoke was first asked (0: never)
	// gone holds the return times of linearizable Gets, called after the
	// put returned, that found the key gone.
	gone []int64
}

func (l *leaseLife) mustLiveUntil() int64 {
	var until int64
	for _, g := range l.granted {
		until = max(until, g)
	}
	return until
}

type leaseLog struct {
	mu    sync.Mutex
	lives []*leaseLife
}

type leaseKeeper struct {
	name string
	cli  *clientv3.Client
	rng  *rand.Rand
	clk  clock
	log  *leaseLog
}

func (k *leaseKeeper) run(ctx context.Context) {
	for n := 0; ctx.Err() == nil; n++ {
		k.life(ctx, n)
	}
}

func (k *leaseKeeper) pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// life grants one lease and tends it until it is gone, revoked, or ctx
// ends.
func (k *leaseKeeper) life(ctx context.Context, n int) {
	sent := k.clk.now()
	gctx, cancel := context.WithTimeout(ctx, opTimeout)
	g, err := k.cli.Grant(gctx, leaseTTL)
	cancel()
	if err != nil {
		k.pause(ctx, 100*time.Millisecond)
		return
	}
	l := &leaseLife{keeper: k.name, id: g.ID, key: fmt.Sprintf("lease/%s/%d", k.name, n),
		granted: []int64{sent + g.TTL*int64(time.Second)}}
	k.log.mu.Lock()
	k.log.lives = append(k.log.lives, l)
	k.log.mu.Unlock()

	pctx, cancel := context.WithTimeout(ctx, opTimeout)
	_, err = k.cli.Put(pctx, l.key, "x", clientv3.WithLease(g.ID))
	cancel()
	ret := k.clk.now()
	k.record(func() {
		if err == nil {
			l.putAt = ret
		}
	})
	for i, rounds := 0, 5+k.rng.IntN(10); i < rounds && ctx.Err() == nil; i++ {
		k.pause(ctx, time.Duration(700+k.rng.IntN(600))*time.Millisecond)
		sent := k.clk.now()
		kctx, cancel := context.WithTimeout(ctx, time.Second)
		r, err := k.cli.KeepAliveOnce(kctx, g.ID)
		cancel()
		switch {
		case err == nil:
			k.record(func() { l.granted = append(l.granted, sent+r.TTL*int64(time.Second)) })
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			return // it expired: nothing more to tend
		}
		if l.putAt == 0 {
			continue
		}
		gctx, cancel := context.WithTimeout(ctx, opTimeout)
		got, err := k.cli.Get(gctx, l.key)
		cancel()
		ret := k.clk.now()
		if err == nil && len(got.Kvs) == 0 {
			k.record(func() { l.gone = append(l.gone, ret) })
			return
		}
	}
	k.record(func() { l.revoke = k.clk.now() })
	rctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	_, _ = k.cli.Revoke(rctx, g.ID)
	cancel()
}

func (k *leaseKeeper) record(f func()) {
	k.log.mu.Lock()
	f()
	k.log.mu.Unlock()
}

// checkLeases returns every lease seen gone before it had to live until.
func checkLeases(lives []*leaseLife) []error {
	var errs []error
	for _, l := range lives {
		until := l.mustLiveUntil()
		for _, g := range l.gone {
			if l.revoke != 0 && l.revoke <= g {
				continue
			}
			if g < until {
				errs = append(errs, fmt.Errorf("lease %x (%s, key %s) ended early: a Get returned at %v found its key gone, but a grant or keep-alive had given it until %v",
					int64(l.id), l.keeper, l.key, time.Duration(g), time.Duration(until)))
			}
		}
	}
	return errs
}

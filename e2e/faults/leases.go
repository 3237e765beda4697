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
// gone — or a keep-alive answered "not found" at g — with no revoke asked
// before g, is a lease ended early: by an early expiry, or by a renewal
// answered for a lease already gone (a stale leader renewing what the
// real one has revoked).

// leaseTTL is the keepers' lease TTL in the long runs, in seconds: above
// the minimum of 1.5 election timeouts, and short, so that faults outlast
// it. The short runs use twice as much (plan.leaseTTL): see holdPause.
const leaseTTL = 4

// leaseLife is one lease as its keeper saw it. Times are clock.now().
type leaseLife struct {
	keeper string
	id     clientv3.LeaseID
	key    string
	// granted holds the grant and each keep-alive that got a TTL: the
	// lease must live until the time its request was sent plus that TTL.
	granted []renewal
	putAt   int64 // when the key's put returned (0: never acknowledged)
	revoke  int64 // when a revoke was first asked (0: never)
	// gone holds the return times of linearizable Gets, called after the
	// put returned, that found the key gone.
	gone []int64
	// notFound is when a keep-alive returned "lease not found" (0: never).
	notFound int64
}

// renewal is a grant or keep-alive answered with a TTL.
type renewal struct {
	sent int64 // clock.now() when its request was sent
	ttl  int64 // seconds
}

func (r renewal) until() int64 { return r.sent + r.ttl*int64(time.Second) }

// promise is the renewal that made the lease live longest.
func (l *leaseLife) promise() renewal {
	var best renewal
	for _, r := range l.granted {
		if r.until() > best.until() {
			best = r
		}
	}
	return best
}

type leaseLog struct {
	mu    sync.Mutex
	lives []*leaseLife
}

type leaseKeeper struct {
	name string
	ttl  int64 // seconds
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
	g, err := k.cli.Grant(gctx, k.ttl)
	cancel()
	if err != nil {
		k.pause(ctx, 100*time.Millisecond)
		return
	}
	l := &leaseLife{keeper: k.name, id: g.ID, key: fmt.Sprintf("lease/%s/%d", k.name, n),
		granted: []renewal{{sent: sent, ttl: g.TTL}}}
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
			k.record(func() { l.granted = append(l.granted, renewal{sent: sent, ttl: r.TTL}) })
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			// The leader has it expired or does not know it: either is
			// a lease ended, for the client (etcd's Renew says so only
			// once an expired lease's revoke is applied, or once it has
			// applied everything committed and still does not know it).
			ret := k.clk.now()
			k.record(func() { l.notFound = ret })
			return
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
func checkLeases(lives []*leaseLife, clk clock) []error {
	var errs []error
	for _, l := range lives {
		p := l.promise()
		early := func(at int64) bool { return at < p.until() && (l.revoke == 0 || at < l.revoke) }
		promised := fmt.Sprintf("the grant or keep-alive sent at %s was answered with a TTL of %ds, so it had to live until %s",
			clk.wall(p.sent), p.ttl, clk.wall(p.until()))
		for _, g := range l.gone {
			if early(g) {
				errs = append(errs, fmt.Errorf("lease %x (%s, key %s) ended early: a linearizable Get returned at %s found its key gone, but %s",
					int64(l.id), l.keeper, l.key, clk.wall(g), promised))
			}
		}
		if l.notFound != 0 && early(l.notFound) {
			errs = append(errs, fmt.Errorf("lease %x (%s, key %s): a keep-alive returned \"lease not found\" at %s, but %s",
				int64(l.id), l.keeper, l.key, clk.wall(l.notFound), promised))
		}
	}
	return errs
}

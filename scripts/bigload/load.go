package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// load puts keys [from, to) in txns of c.batch puts from c.clients
// writers over the shared connections; it returns the first error.
func load(ctx context.Context, clis []*clientv3.Client, c config, ks keyspace, from, to int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	for w := range c.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cli := clis[w%len(clis)]
			rng := rand.New(rand.NewPCG(uint64(from), uint64(w)))
			val := make([]byte, c.valSize)
			ops := make([]clientv3.Op, 0, c.batch)
			for ctx.Err() == nil {
				first := int(next.Add(int64(c.batch))) - c.batch
				if first >= to {
					return
				}
				ops = ops[:0]
				for i := first; i < min(first+c.batch, to); i++ {
					fillValue(rng, val)
					ops = append(ops, clientv3.OpPut(ks.key(i), string(val)))
				}
				if err := commit(ctx, cli, ops); err != nil {
					cancel(err)
				}
			}
		}()
	}
	wg.Wait()
	return context.Cause(ctx)
}

// commit sends one loading txn, again while the server says it is
// overloaded (etcd's "too many requests": its applies lag its commits).
func commit(ctx context.Context, cli *clientv3.Client, ops []clientv3.Op) error {
	for {
		tctx, cancel := context.WithTimeout(ctx, time.Minute)
		_, err := cli.Txn(tctx).Then(ops...).Commit()
		cancel()
		if !errors.Is(err, rpctypes.ErrTooManyRequests) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

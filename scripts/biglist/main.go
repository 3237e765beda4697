// Command biglist measures large lists (used by scripts/bench.sh, scenario
// p; issue 22's "large lists without blowing up memory"): with -op load it
// puts -keys keys of -val-size bytes under one prefix; with -op whole,
// -clients clients (one connection each) each read the whole prefix in one
// Range, -rounds times; with -op paged they list it as Kubernetes does,
// pages of -limit keys, the first at the current revision and the next
// ones at its revision from after the last key. Every list is checked to
// hold every key. It prints "name value" lines: lists per second, and the
// seconds the load took.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

const prefix = "biglist/"

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:2379", "client endpoint")
	op := flag.String("op", "whole", "load, whole or paged")
	keys := flag.Int("keys", 100000, "keys under the prefix")
	valSize := flag.Int("val-size", 1024, "value bytes of each key")
	clients := flag.Int("clients", 10, "concurrent listing clients, one connection each")
	rounds := flag.Int("rounds", 3, "lists per client")
	limit := flag.Int64("limit", 500, "page size of -op paged")
	flag.Parse()

	ctx := context.Background()
	switch *op {
	case "load":
		cli := dial(*endpoint)
		defer cli.Close()
		start := time.Now()
		load(ctx, cli, *keys, *valSize)
		fmt.Printf("load_seconds %.1f\n", time.Since(start).Seconds())
	case "whole", "paged":
		clis := make([]*clientv3.Client, *clients)
		for i := range clis {
			clis[i] = dial(*endpoint)
			defer clis[i].Close()
		}
		list := wholeList
		if *op == "paged" {
			list = func(ctx context.Context, cli *clientv3.Client) int {
				return pagedList(ctx, cli, *limit)
			}
		}
		start := time.Now()
		var wg sync.WaitGroup
		for _, cli := range clis {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range *rounds {
					if n := list(ctx, cli); n != *keys {
						fail(fmt.Errorf("a %s list returned %d keys, want %d", *op, n, *keys))
					}
				}
			}()
		}
		wg.Wait()
		secs := time.Since(start).Seconds()
		fmt.Printf("%s_lists_per_sec %.2f\n", *op, float64(*clients**rounds)/secs)
		fmt.Printf("%s_seconds %.1f\n", *op, secs)
	default:
		fail(fmt.Errorf("unknown -op %q", *op))
	}
}

func dial(endpoint string) *clientv3.Client {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		fail(err)
	}
	return cli
}

// load puts the keys 100 to a txn (100 KiB at 1 KiB values, under etcd's
// default request limit), from 8 writers.
func load(ctx context.Context, cli *clientv3.Client, keys, valSize int) {
	const perTxn = 100
	val := strings.Repeat("v", valSize)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for from := int(next.Add(perTxn)) - perTxn; from < keys; from = int(next.Add(perTxn)) - perTxn {
				var ops []clientv3.Op
				for i := from; i < min(from+perTxn, keys); i++ {
					ops = append(ops, clientv3.OpPut(key(i), val))
				}
				if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
					fail(err)
				}
			}
		}()
	}
	wg.Wait()
}

func key(i int) string { return fmt.Sprintf("%s%08d", prefix, i) }

// wholeList reads the prefix in one Range and returns how many keys came.
func wholeList(ctx context.Context, cli *clientv3.Client) int {
	r, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		fail(err)
	}
	return len(r.Kvs)
}

// pagedList lists the prefix as Kubernetes' reflector does (limit pages,
// continued at the first page's revision) and returns how many keys came.
func pagedList(ctx context.Context, cli *clientv3.Client, limit int64) int {
	end := clientv3.GetPrefixRangeEnd(prefix)
	from, rev, n := prefix, int64(0), 0
	for {
		r, err := cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(limit), clientv3.WithRev(rev))
		if err != nil {
			fail(err)
		}
		n += len(r.Kvs)
		if !r.More {
			return n
		}
		if rev == 0 {
			rev = r.Header.Revision
		}
		from = string(r.Kvs[len(r.Kvs)-1].Key) + "\x00"
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "biglist:", err)
	os.Exit(1)
}

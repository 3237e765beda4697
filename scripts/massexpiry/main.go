// Command massexpiry measures what a mass lease expiry does to writes
// (used by scripts/bench.sh, scenario i): it grants -leases leases of -ttl
// seconds, each with one key attached, measures put latency while idle,
// then again from the moment they expire until every lease is gone, and
// prints both p99s and how long the expiry took.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/scripts/internal/putprobe"
)

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:2379", "client endpoint")
	leases := flag.Int("leases", 100000, "leases to grant")
	ttl := flag.Int64("ttl", 15, "their TTL in seconds (they must all be granted within it)")
	workers := flag.Int("workers", 200, "concurrent granters")
	limit := flag.Duration("max-expiry", 5*time.Minute, "give up waiting for the expiry after this")
	flag.Parse()

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{*endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		fail(err)
	}
	defer cli.Close()
	ctx := context.Background()

	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(*leases); i = next.Add(1) {
				l, err := cli.Grant(ctx, *ttl)
				if err != nil {
					fail(err)
				}
				if _, err := cli.Put(ctx, fmt.Sprintf("massexpiry/%08d", i), "v", clientv3.WithLease(l.ID)); err != nil {
					fail(err)
				}
			}
		}()
	}
	wg.Wait()
	expiresAt := start.Add(time.Duration(*ttl) * time.Second)
	if time.Now().After(expiresAt) {
		fail(fmt.Errorf("granting took %s, longer than the TTL: use a larger -ttl", time.Since(start)))
	}

	idle := putprobe.Latencies(ctx, cli, "massexpiry-probe", func(int) bool { return time.Now().Before(expiresAt.Add(-time.Second)) }, fail)
	for time.Now().Before(expiresAt) {
		time.Sleep(10 * time.Millisecond)
	}
	expiryStart := time.Now()
	deadline := expiryStart.Add(*limit)
	during := putprobe.Latencies(ctx, cli, "massexpiry-probe", func(n int) bool {
		if n%200 == 0 { // check the remaining keys now and then
			r, err := cli.Get(ctx, "massexpiry/", clientv3.WithPrefix(), clientv3.WithCountOnly())
			if err != nil {
				fail(err)
			}
			return r.Count > 0 && time.Now().Before(deadline)
		}
		return true
	}, fail)
	fmt.Printf("idle_put_p99_ms %.2f\n", putprobe.P99(idle))
	fmt.Printf("expiry_put_p99_ms %.2f\n", putprobe.P99(during))
	fmt.Printf("expiry_seconds %.1f\n", time.Since(expiryStart).Seconds())
	fmt.Printf("puts_idle %d puts_during %d\n", len(idle), len(during))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "massexpiry:", err)
	os.Exit(1)
}

// Command maintbench measures maintenance on a large store (used by
// scripts/bench.sh, scenario m): it fills the store with -bytes of 64 KiB
// values, overwrites a quarter of them and compacts (so there is space to
// reclaim), then times a snapshot (Maintenance.Snapshot, written to a file
// as etcdctl snapshot save does) and a defragmentation, measuring put
// latency while idle and while each runs. It prints "name
// value" lines.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/scripts/internal/putprobe"
)

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:2379", "client endpoint")
	total := flag.Int64("bytes", 1<<30, "bytes of values to write")
	file := flag.String("snapshot-file", "maintbench.snapshot", "where the snapshot is written (removed afterwards)")
	flag.Parse()

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{*endpoint}, DialTimeout: 5 * time.Second,
		MaxCallSendMsgSize: 2 << 20})
	if err != nil {
		fail(err)
	}
	defer cli.Close()
	ctx := context.Background()

	const valSize = 64 << 10
	val := strings.Repeat("v", valSize)
	keys := int(*total / valSize)
	fill := func(from, to int) {
		var next atomic.Int64
		next.Store(int64(from) - 1)
		var wg sync.WaitGroup
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1); i < int64(to); i = next.Add(1) {
					if _, err := cli.Put(ctx, fmt.Sprintf("maint/%08d", i), val); err != nil {
						fail(err)
					}
				}
			}()
		}
		wg.Wait()
	}
	fill(0, keys)
	fill(0, keys/4)
	r, err := cli.Get(ctx, "maint-probe")
	if err != nil {
		fail(err)
	}
	if _, err := cli.Compact(ctx, r.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		fail(err)
	}

	var snapDone atomic.Bool
	var size int64
	var secs float64
	go func() {
		start := time.Now()
		size = snapshot(ctx, cli, *file)
		secs = time.Since(start).Seconds()
		snapDone.Store(true)
	}()
	duringSnap := putprobe.Latencies(ctx, cli, "maint-probe", until(&snapDone), countPutError)
	os.Remove(*file)
	// Seconds, not MB/s: the two servers' snapshots of the same data differ
	// in size (MetaStore's sstables are compressed and hold no free pages),
	// so bytes per second would compare different amounts of work.
	fmt.Printf("snapshot_seconds %.2f\n", secs)
	fmt.Printf("snapshot_mb %.0f\n", float64(size)/(1<<20))
	fmt.Printf("snapshot_put_p99_ms %.2f\n", putprobe.P99(duringSnap))

	idleEnd := time.Now().Add(2 * time.Second)
	idle := putprobe.Latencies(ctx, cli, "maint-probe", func(int) bool { return !time.Now().After(idleEnd) }, countPutError)
	var done atomic.Bool
	var defragSecs float64
	go func() {
		start := time.Now()
		if _, err := cli.Defragment(ctx, *endpoint); err != nil {
			fail(err)
		}
		defragSecs = time.Since(start).Seconds()
		done.Store(true)
	}()
	during := putprobe.Latencies(ctx, cli, "maint-probe", until(&done), countPutError)
	fmt.Printf("defrag_seconds %.2f\n", defragSecs)
	fmt.Printf("idle_put_p99_ms %.2f\n", putprobe.P99(idle))
	fmt.Printf("defrag_put_p99_ms %.2f\n", putprobe.P99(during))
	fmt.Printf("puts_idle %d puts_during %d put_errors %d\n", len(idle), len(during), putErrors.Load())
}

// putErrors counts puts that failed (see countPutError).
var putErrors atomic.Int64

// snapshot streams a snapshot into file and returns its size.
func snapshot(ctx context.Context, cli *clientv3.Client, file string) int64 {
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		fail(err)
	}
	defer rc.Close()
	f, err := os.Create(file)
	if err != nil {
		fail(err)
	}
	n, err := io.Copy(f, rc)
	if err != nil {
		fail(err)
	}
	if err := f.Sync(); err != nil {
		fail(err)
	}
	f.Close()
	return n
}

// countPutError counts a put that failed: a server that blocks writes
// longer than its request timeout (etcd during a long defragmentation)
// fails them; their latency is how long they blocked.
func countPutError(err error) {
	putErrors.Add(1)
	fmt.Fprintln(os.Stderr, "maintbench: put:", err)
}

// until is putprobe's "more" for "until done is set, at least one put".
func until(done *atomic.Bool) func(n int) bool {
	return func(n int) bool { return n == 0 || !done.Load() }
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "maintbench:", err)
	os.Exit(1)
}

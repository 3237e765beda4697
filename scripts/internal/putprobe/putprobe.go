// Package putprobe measures put latency for the benchmark commands under
// scripts/ (massexpiry, maintbench): one put after another on one key while
// something else happens on the server, and the p99 of what was measured.
package putprobe

import (
	"context"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Latencies puts key, one put after another, while more(n) holds (n puts
// done so far), and returns each put's latency. A failed put is passed to
// onErr and counted with the time it took.
func Latencies(ctx context.Context, cli *clientv3.Client, key string, more func(n int) bool, onErr func(error)) []time.Duration {
	var out []time.Duration
	for n := 0; more(n); n++ {
		t := time.Now()
		if _, err := cli.Put(ctx, key, "v"); err != nil {
			onErr(err)
		}
		out = append(out, time.Since(t))
	}
	return out
}

// P99 is the 99th percentile of ds in milliseconds (0 for none); it sorts ds.
func P99(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return float64(ds[(len(ds)*99)/100]) / float64(time.Millisecond)
}

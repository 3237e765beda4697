package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// header names the columns of a step's line (latencies in ms).
const header = "keys\trss_mib\trss_anon_mib\trss_file_mib\tdisk_mib\tload_keys_per_s\t" +
	"read_s_p50\tread_s_p99\tread_l_p50\tread_l_p99\tput_p50\tput_p99\twatch_p50\twatch_p99\trss_peak_mib\twatch_put_p50\twatch_put_p99"

// step is what one pause of the load measured.
type step struct {
	keys                              int
	rssMiB, anonMiB, fileMiB, diskMiB float64
	peakMiB                           float64 // VmHWM: the highest RSS since the server started
	keysPerSec                        float64
	serial, linear, put, watch        pct
	watchPut                          pct // the watched puts' own latency
}

func (s step) row() string {
	return fmt.Sprintf("%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.0f\t%s\t%s\t%s\t%s\t%.1f\t%s",
		s.keys, s.rssMiB, s.anonMiB, s.fileMiB, s.diskMiB, s.keysPerSec, s.serial, s.linear, s.put, s.watch, s.peakMiB, s.watchPut)
}

// pct is a latency distribution's p50 and p99, in ms.
type pct struct{ p50, p99 float64 }

func (p pct) String() string { return fmt.Sprintf("%.3f\t%.3f", p.p50, p.p99) }

func percentiles(d []time.Duration) pct {
	slices.Sort(d)
	at := func(q float64) float64 {
		i := int(q*float64(len(d))+0.999999) - 1 // nearest rank
		return float64(d[max(i, 0)].Microseconds()) / 1000
	}
	return pct{at(0.50), at(0.99)}
}

// measure takes one step's measures with the load paused, RSS first (the
// probes' own garbage aside).
func measure(ctx context.Context, clis []*clientv3.Client, c config, ks keyspace, w *watcher, loaded int) (step, error) {
	s := step{keys: loaded}
	var err error
	if c.pid > 0 {
		if s.rssMiB, s.anonMiB, s.fileMiB, s.peakMiB, err = rss(c.pid); err != nil {
			return s, err
		}
	}
	if c.dataDir != "" {
		if s.diskMiB, err = diskMiB(c.dataDir); err != nil {
			return s, err
		}
	}
	get := func(opts ...clientv3.OpOption) func(*clientv3.Client, *rand.Rand) error {
		return func(cli *clientv3.Client, rng *rand.Rand) error {
			k := ks.randomKey(rng, loaded)
			r, err := cli.Get(ctx, k, opts...)
			if err == nil && len(r.Kvs) != 1 {
				err = fmt.Errorf("get %s: %d keys, want 1", k, len(r.Kvs))
			}
			return err
		}
	}
	if s.serial, err = probe(clis, c.probeClients, c.reads, get(clientv3.WithSerializable())); err != nil {
		return s, fmt.Errorf("serializable reads: %w", err)
	}
	if s.linear, err = probe(clis, c.probeClients, c.reads, get()); err != nil {
		return s, fmt.Errorf("linearizable reads: %w", err)
	}
	s.put, err = probe(clis, c.probeClients, c.puts, func(cli *clientv3.Client, rng *rand.Rand) error {
		val := make([]byte, c.valSize)
		fillValue(rng, val)
		_, err := cli.Put(ctx, ks.randomKey(rng, loaded), string(val))
		return err
	})
	if err != nil {
		return s, fmt.Errorf("puts: %w", err)
	}
	if s.watch, s.watchPut, err = w.measure(ctx, clis[0], c, ks, loaded); err != nil {
		return s, fmt.Errorf("watch: %w", err)
	}
	return s, nil
}

// probe runs total requests from n concurrent clients (closed loop) and
// returns their latencies' percentiles; it stops at the first error.
func probe(clis []*clientv3.Client, n, total int, req func(*clientv3.Client, *rand.Rand) error) (pct, error) {
	lat := make([]time.Duration, total)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cli := clis[g%len(clis)]
			rng := rand.New(rand.NewPCG(uint64(total), uint64(g)))
			for i := g; i < total; i += n {
				t := time.Now()
				if errs[g] = req(cli, rng); errs[g] != nil {
					return
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return pct{}, err
		}
	}
	return percentiles(lat), nil
}

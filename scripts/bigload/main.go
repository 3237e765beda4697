// Command bigload measures a server as its keyspace grows beyond RAM (used
// by scripts/bench-big.sh, `make bench-big`; issue 22 item 4). It loads
// -keys keys shaped like Kubernetes pods (/registry/pods/ns-NNNN/pod-NNNNNNNN,
// -val-size bytes of incompressible values) with -clients writers sending
// txns of -batch puts, and after every -step keys it pauses the load and
// measures, with the load stopped:
//
//   - the server's resident set (VmRSS, its anonymous and file-backed parts,
//     and its peak VmHWM) from /proc/<-pid>/status, and the data dir's
//     bytes on disk;
//   - p50/p99 of -reads point reads of random existing keys, serializable
//     and then linearizable, from -probe-clients concurrent clients;
//   - p50/p99 of -puts overwrites of random existing keys, likewise;
//   - p50/p99 of watch event latency: a watcher on one namespace's prefix,
//     open for the whole run, and -watch-events puts into that namespace one
//     at a time; the latency is from a put being sent to its event arriving
//     (and, to tell the write's share from the delivery's, the puts' own).
//
// Each step is one tab-separated line (header first) on stdout: the curve
// bench-big.sh tabulates and plots. Progress goes to stderr.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func main() {
	var c config
	flag.StringVar(&c.endpoint, "endpoint", "127.0.0.1:2379", "client endpoint")
	flag.IntVar(&c.pid, "pid", 0, "server process id whose RSS is sampled (0: none)")
	flag.StringVar(&c.dataDir, "data-dir", "", "server data dir whose bytes on disk are reported (empty: none)")
	flag.IntVar(&c.keys, "keys", 10_000_000, "keys to load")
	flag.IntVar(&c.step, "step", 1_000_000, "keys between measurements")
	flag.IntVar(&c.namespaces, "namespaces", 1000, "namespaces the keys are spread over (the watched one is ns-0000)")
	flag.IntVar(&c.valSize, "val-size", 300, "value bytes of each key")
	flag.IntVar(&c.clients, "clients", 64, "concurrent loading writers")
	flag.IntVar(&c.conns, "conns", 8, "gRPC connections shared by the writers and by the probes")
	flag.IntVar(&c.batch, "batch", 64, "puts per loading txn")
	flag.IntVar(&c.probeClients, "probe-clients", 8, "concurrent clients of the read and put measures")
	flag.IntVar(&c.reads, "reads", 4000, "point reads of each consistency per step")
	flag.IntVar(&c.puts, "puts", 2000, "overwrites per step")
	flag.IntVar(&c.watchEvents, "watch-events", 2000, "watched puts per step, one at a time (p99 of 2000: the 20th worst)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), `Usage: bigload [flags]

Loads -keys Kubernetes-like keys into an etcd v3 server in txns of -batch
puts from -clients writers and, every -step keys, pauses the load and
prints one tab-separated line: keys loaded, the server's RSS (VmRSS of
-pid), its data dir's bytes on disk, the load rate, and p50/p99 (ms) of
point reads (serializable, linearizable), of overwrites of random existing
keys and of watch event latency. Used by scripts/bench-big.sh.

`)
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := c.check(); err != nil {
		fmt.Fprintln(os.Stderr, "bigload:", err)
		flag.Usage()
		os.Exit(2)
	}
	if err := run(context.Background(), c); err != nil {
		fail(err)
	}
}

type config struct {
	endpoint, dataDir                      string
	pid, keys, step, namespaces, valSize   int
	clients, conns, batch                  int
	probeClients, reads, puts, watchEvents int
}

func (c config) check() error {
	switch {
	case c.keys <= 0 || c.step <= 0:
		return fmt.Errorf("-keys and -step must be positive")
	case c.namespaces <= 0 || c.step < c.namespaces:
		return fmt.Errorf("-step (%d) must be at least -namespaces (%d): every step needs a key in the watched namespace", c.step, c.namespaces)
	case c.namespaces > 10000:
		return fmt.Errorf("-namespaces must be at most 10000 (ns-NNNN)")
	case c.valSize < 64:
		return fmt.Errorf("-val-size must be at least 64 (a watched value carries its send time)")
	case c.clients <= 0 || c.conns <= 0 || c.batch <= 0 || c.probeClients <= 0:
		return fmt.Errorf("-clients, -conns, -batch and -probe-clients must be positive")
	case c.reads <= 0 || c.puts <= 0 || c.watchEvents <= 0:
		return fmt.Errorf("-reads, -puts and -watch-events must be positive")
	}
	return nil
}

// run loads the keys step by step and prints each step's measures.
func run(ctx context.Context, c config) error {
	clis := make([]*clientv3.Client, c.conns)
	for i := range clis {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.endpoint}, DialTimeout: 5 * time.Second})
		if err != nil {
			return err
		}
		defer cli.Close()
		clis[i] = cli
	}
	ks := keyspace{namespaces: c.namespaces}
	w, err := startWatch(ctx, c.endpoint, ks.prefix(0))
	if err != nil {
		return err
	}
	defer w.stop()

	fmt.Println(header)
	start := time.Now()
	for loaded := 0; loaded < c.keys; {
		to := min(loaded+c.step, c.keys)
		t := time.Now()
		if err := load(ctx, clis, c, ks, loaded, to); err != nil {
			return fmt.Errorf("loading keys %d-%d: %w", loaded, to, err)
		}
		rate := float64(to-loaded) / time.Since(t).Seconds()
		loaded = to
		s, err := measure(ctx, clis, c, ks, w, loaded)
		if err != nil {
			return fmt.Errorf("measuring at %d keys: %w", loaded, err)
		}
		s.keysPerSec = rate
		fmt.Println(s.row())
		fmt.Fprintf(os.Stderr, "bigload: %d keys (%.0f s): rss %.0f MiB, read p99 %.2f/%.2f ms, put p99 %.2f ms, watch p99 %.2f ms\n",
			loaded, time.Since(start).Seconds(), s.rssMiB, s.serial.p99, s.linear.p99, s.put.p99, s.watch.p99)
	}
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bigload:", err)
	os.Exit(1)
}

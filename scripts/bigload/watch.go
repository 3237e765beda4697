package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// marker starts the value of every watched put of a measure, followed by
// its sequence number; the load's values (random alphabet bytes) never
// contain a space, so they cannot be mistaken for one.
var marker = []byte("bigload-watch ")

// watcher is one watch on a prefix, open for the whole run (a
// kube-apiserver's watch cache is one such long-lived watch); it reports
// when each marked event arrived and drops the load's events.
type watcher struct {
	cli      *clientv3.Client
	cancel   context.CancelFunc
	arrivals chan arrival
	seq      int
}

type arrival struct {
	seq int
	at  time.Time
	err error
}

// startWatch opens the watch on its own connection, so that it does not
// queue behind the load's txns, and returns once the server has created it.
func startWatch(ctx context.Context, endpoint, prefix string) (*watcher, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	w := &watcher{cli: cli, cancel: cancel, arrivals: make(chan arrival, 1024)}
	wch := cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	if r, ok := <-wch; !ok || !r.Created {
		w.stop()
		return nil, fmt.Errorf("watch on %s not created: %v", prefix, r.Err())
	}
	go func() {
		for r := range wch {
			if err := r.Err(); err != nil {
				w.arrivals <- arrival{err: err}
				return
			}
			now := time.Now()
			for _, ev := range r.Events {
				if v, ok := bytes.CutPrefix(ev.Kv.Value, marker); ok {
					n, _, _ := bytes.Cut(v, []byte(" "))
					if seq, err := strconv.Atoi(string(n)); err == nil {
						w.arrivals <- arrival{seq: seq, at: now}
					}
				}
			}
		}
		w.arrivals <- arrival{err: fmt.Errorf("watch on %s closed", prefix)}
	}()
	return w, nil
}

func (w *watcher) stop() {
	w.cancel()
	w.cli.Close()
}

// measure puts c.watchEvents marked values into random existing keys of the
// watched namespace, one at a time, and returns the percentiles of the
// time from sending each put to its event arriving, and of the puts' own
// latency: when the two tails match, the write path, not the event's
// delivery, makes the event's tail.
func (w *watcher) measure(ctx context.Context, cli *clientv3.Client, c config, ks keyspace, loaded int) (event, put pct, err error) {
	rng := rand.New(rand.NewPCG(uint64(loaded), 0))
	val := make([]byte, c.valSize)
	lat := make([]time.Duration, 0, c.watchEvents)
	putLat := make([]time.Duration, 0, c.watchEvents)
	for range c.watchEvents {
		w.seq++
		fillValue(rng, val)
		copy(val, fmt.Appendf(nil, "%s%d ", marker, w.seq))
		sent := time.Now()
		if _, err := cli.Put(ctx, ks.randomWatchedKey(rng, loaded), string(val)); err != nil {
			return pct{}, pct{}, err
		}
		putLat = append(putLat, time.Since(sent))
		if err := w.await(sent, &lat); err != nil {
			return pct{}, pct{}, err
		}
	}
	return percentiles(lat), percentiles(putLat), nil
}

// await waits for the event of put w.seq (earlier ones are late arrivals
// of a failed measure) and appends its latency.
func (w *watcher) await(sent time.Time, lat *[]time.Duration) error {
	timeout := time.After(30 * time.Second)
	for {
		select {
		case a := <-w.arrivals:
			if a.err != nil {
				return a.err
			}
			if a.seq == w.seq {
				*lat = append(*lat, a.at.Sub(sent))
				return nil
			}
		case <-timeout:
			return fmt.Errorf("no event for watched put %d after 30s", w.seq)
		}
	}
}

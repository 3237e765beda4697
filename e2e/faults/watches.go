//go:build linux

package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/e2e/watchcheck"
)

// Watchers opened during the faults, checked at the end by watchcheck
// against the history. Each runs through clientv3, which resumes it after
// a lost stream from the revision after the last it saw: one incarnation
// as far as the checker is concerned, so a resume that skips or repeats
// an event is a broken guarantee.

type watcher struct {
	rec *watchcheck.Recording
	cli *clientv3.Client
	ctx context.Context // its stream's, for RequestProgress
	w   *watchcheck.ClientWatcher
}

// watchSpecs are the ranges watchers pick from: the KV workload, the lock
// keys, the fenced counter alone, everything.
var watchSpecs = []watchcheck.Spec{
	{Key: "kv/", End: "kv0"},
	{Key: mutexPrefix, End: "mutex0"},
	{Key: counterKey},
	{Key: "\x00", End: "\x00"},
}

// openWatcher starts a watcher on cli with a random range and options,
// from the revision after rev or up to 100 revisions before it: always an
// explicit start, since clientv3 resumes a watcher created at "now" from
// the created response's revision, which would repeat that revision.
func openWatcher(ctx context.Context, cli *clientv3.Client, rng *rand.Rand, name string, rev int64) *watcher {
	spec := watchSpecs[rng.IntN(len(watchSpecs))]
	spec.StartRev = rev + 1
	if rng.IntN(2) == 0 {
		spec.StartRev = max(1, rev-int64(rng.IntN(100)))
	}
	spec.PrevKV = rng.IntN(2) == 0
	spec.ProgressNotify = rng.IntN(2) == 0
	spec.NoDelete = rng.IntN(8) == 0
	ctx = watchcheck.StreamCtx(ctx, name)
	rec := watchcheck.NewRecording(name, spec)
	return &watcher{rec: rec, cli: cli, ctx: ctx, w: watchcheck.ClientWatch(ctx, cli, rec)}
}

// await waits until the watcher has seen revision to (asking for progress
// notifications meanwhile), then stops it. An error says it never got
// there.
func (w *watcher) await(to int64, within time.Duration) error {
	defer w.w.Stop()
	deadline := time.Now().Add(within)
	for i := 0; w.rec.LastSeen() < to; i++ {
		if canceled, compact := w.rec.Ended(); canceled {
			return fmt.Errorf("watcher %s (%s) was canceled (compact revision %d) after revision %d",
				w.rec.Name, w.rec.Spec(), compact, w.rec.LastSeen())
		}
		if time.Now().After(deadline) {
			gauges := metricLines(w.cli.Endpoints(), "etcd_debugging_mvcc_watch", "etcd_debugging_mvcc_slow_watcher")
			return fmt.Errorf("watcher %s (%s, through %v) saw up to revision %d of %d within %v; its last responses: %s\n\tits members' watch gauges:%s",
				w.rec.Name, w.rec.Spec(), w.cli.Endpoints(), w.rec.LastSeen(), to, within, w.tail(5), gauges)
		}
		if i%10 == 0 {
			pctx, cancel := context.WithTimeout(w.ctx, time.Second)
			_ = w.cli.RequestProgress(pctx)
			cancel()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// tail describes the last n responses the watcher got.
func (w *watcher) tail(n int) string {
	segs := w.rec.Segments()
	resps := segs[len(segs)-1].Resps
	var b strings.Builder
	for _, r := range resps[max(0, len(resps)-n):] {
		b.WriteString("\n\t" + r.String())
	}
	return b.String()
}

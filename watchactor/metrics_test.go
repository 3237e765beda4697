package watchactor_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/testkit"
	"github.com/metastore/metastore/watchactor"
)

// gauges reads the watch families from a registry of the process-wide ones.
type gauges struct {
	t   *testing.T
	reg *prometheus.Registry
}

func (g gauges) get(name string) float64 {
	g.t.Helper()
	s := testkit.Gather(g.t, g.reg)
	if f := s[name]; f == nil || len(f.Metric) != 1 {
		g.t.Fatalf("%s: not one sample: %v", name, f)
	}
	v, _ := s.Value(name)
	return v
}

// becomes waits until family name reads want.
func (g gauges) becomes(name string, want float64) {
	g.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		got := g.get(name)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("%s = %v, want %v", name, got, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// The watch gauges follow the Hub: streams and watchers as they open and
// close, an unsynced watcher while its stream is full, events pending in
// a stream until sent (then counted as sent); and a stopped Hub takes back
// everything it reported.
func TestMetricsFollowTheHub(t *testing.T) {
	g := gauges{t, testkit.Registry(t)}
	// The baseline before the Hub exists: the barrier's stream is closed
	// by a message the Hub may not have handled when barrier returns.
	streams, watchers, slow := g.get("etcd_debugging_mvcc_watch_stream_total"),
		g.get("etcd_debugging_mvcc_watcher_total"), g.get("etcd_debugging_mvcc_slow_watcher_total")
	pending, sent := g.get("etcd_debugging_mvcc_pending_events_total"), g.get("etcd_debugging_mvcc_events_total")
	h := newHarness(t, watchactor.Config{})
	h.barrier()

	a, b := h.open(1<<20), h.open(1) // b's budget: one response at a time
	h.create(a, &pb.WatchCreateRequest{Key: key("k"), RangeEnd: key("l")})
	wa := h.create(a, &pb.WatchCreateRequest{Key: key("x")})
	h.create(b, &pb.WatchCreateRequest{Key: key("k"), RangeEnd: key("l")})
	g.becomes("etcd_debugging_mvcc_watch_stream_total", streams+2)
	g.becomes("etcd_debugging_mvcc_watcher_total", watchers+3)

	// Three events for each k watcher; nobody reads yet: a holds three
	// pending, b holds one and refused the rest (its watcher is unsynced).
	for i := range 3 {
		h.put(fmt.Sprintf("k%d", i), "v")
	}
	g.becomes("etcd_debugging_mvcc_pending_events_total", pending+4)
	g.becomes("etcd_debugging_mvcc_slow_watcher_total", slow+1)

	// a's client reads: its events are sent, no longer pending.
	h.take(a, 3)
	g.becomes("etcd_debugging_mvcc_events_total", sent+3)
	g.becomes("etcd_debugging_mvcc_pending_events_total", pending+1)
	// b's client reads and drains: its watcher catches up and is synced.
	h.take(b, 2) // the live event, then the catch-up of the other two
	g.becomes("etcd_debugging_mvcc_slow_watcher_total", slow)
	g.becomes("etcd_debugging_mvcc_pending_events_total", pending)
	g.becomes("etcd_debugging_mvcc_events_total", sent+6)

	h.send(&watchactor.Cancel{Out: a.Stream, WatchID: wa.WatchId})
	g.becomes("etcd_debugging_mvcc_watcher_total", watchers+2)
	h.send(&watchactor.CloseStream{Out: b.Stream})
	g.becomes("etcd_debugging_mvcc_watch_stream_total", streams+1)
	g.becomes("etcd_debugging_mvcc_watcher_total", watchers+1)

	h.kit.Stop(h.hub)
	g.becomes("etcd_debugging_mvcc_watch_stream_total", streams)
	g.becomes("etcd_debugging_mvcc_watcher_total", watchers)
}

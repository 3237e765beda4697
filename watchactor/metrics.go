package watchactor

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastore/metastore/metrics"
)

// The watch families, under etcd's names (mvcc's watchable store and
// v3rpc's send loop). Process-wide: a Hub moves its gauges by the change
// in its own counts (hubGauges), so members in one process add up.
var (
	watchStreamGauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "watch_stream_total",
		Help: "Total number of watch streams.",
	})
	// watcherGauge counts the watchers of the open streams, those stopped
	// by a compaction included until the client cancels them (as etcd).
	watcherGauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "watcher_total",
		Help: "Total number of watchers.",
	})
	// slowWatcherGauge counts the unsynced watchers: catching up from
	// history, or waiting for their stream to drain.
	slowWatcherGauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "slow_watcher_total",
		Help: "Total number of unsynced slow watchers.",
	})
	// eventsTotal counts the events sent to clients (Stream.Sent), and
	// pendingEvents those queued in streams and not yet sent.
	eventsTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "events_total",
		Help: "Total number of events sent by this member.",
	})
	pendingEvents = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "pending_events_total",
		Help: "Total number of pending events to be sent.",
	})
	// progressSec times the Hub's --watch-progress-notify-interval pass
	// over its watchers (etcd: each stream's progress ticker).
	progressSec = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd_debugging", Subsystem: "server", Name: "watch_send_loop_progress_duration_seconds",
		Help:    "The total duration in seconds of running through the progress loop control stream response.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
)

// MetaStore's own: clients that do not read what they asked for.
var (
	// unreadStreams counts the streams whose next request is not read
	// because the client has not read the responses the stream holds
	// (Stream.Admit).
	unreadStreams = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "metastore_watch_streams_unread",
		Help: "Watch streams whose requests are not read because their client does not read the responses.",
	})
	// progressCoalesced counts progress notifications that took the place
	// of one the client had not yet been sent.
	progressCoalesced = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "metastore_watch_progress_coalesced_total",
		Help: "Watch progress notifications that replaced one not yet sent to the client.",
	})
	// streamsFailed counts the streams the Hub ended (Unavailable: their
	// clients reconnect and resume), by why: the store could not be read
	// for one of their watchers, or the Hub restarted after a panic.
	streamsFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "metastore_watch_streams_failed_total",
		Help: "Watch streams the server ended with Unavailable (clients resume on a new stream), by reason: store-read (history or a prev_kv could not be read), hub-restart.",
	}, []string{"reason"})
	streamsFailedRead    = streamsFailed.WithLabelValues("store-read")
	streamsFailedRestart = streamsFailed.WithLabelValues("hub-restart")
)

func init() {
	metrics.MustRegister(watchStreamGauge, watcherGauge, slowWatcherGauge, eventsTotal, pendingEvents, progressSec,
		unreadStreams, progressCoalesced, streamsFailed)
}

// hubGauges is a Hub's share of the process-wide gauges: what it last
// reported. It outlives restarts of the actor (made with the props), so a
// restarted Hub takes back what its predecessor reported.
type hubGauges struct{ streams, watchers, unsynced int }

// report moves the gauges to the Hub's current counts; called after every
// message, it costs a gauge update only when a count changed.
func (h *Hub) report(stopping bool) {
	streams, watchers, unsynced := len(h.streams), h.watchers, len(h.unsynced)
	if stopping {
		streams, watchers, unsynced = 0, 0, 0
	}
	g := h.gauges
	if d := streams - g.streams; d != 0 {
		watchStreamGauge.Add(float64(d))
		g.streams = streams
	}
	if d := watchers - g.watchers; d != 0 {
		watcherGauge.Add(float64(d))
		g.watchers = watchers
	}
	if d := unsynced - g.unsynced; d != 0 {
		slowWatcherGauge.Add(float64(d))
		g.unsynced = unsynced
	}
}

// isStopping reports whether m is one of the last messages of an actor
// being stopped: from then on it reports nothing.
func isStopping(m any) bool {
	switch m.(type) {
	case *actor.Stopping, *actor.Stopped:
		return true
	}
	return false
}

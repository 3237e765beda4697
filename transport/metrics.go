package transport

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/metastore/metastore/metrics"
)

// The peer network families, under etcd's names (rafthttp). Peer ids are
// hex, as etcd labels them. Each peer resolves its own series once
// (peerMetrics), so a message costs an atomic add, not a label lookup.
var (
	sentBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "network", Name: "peer_sent_bytes_total",
		Help: "The total number of bytes sent to peers.",
	}, []string{"To"})
	receivedBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "network", Name: "peer_received_bytes_total",
		Help: "The total number of bytes received from peers.",
	}, []string{"From"})
	// sentFailures counts messages that did not reach the peer's stream:
	// dropped on a full queue, lost with a stream write that failed,
	// unsendable, and failed snapshot transfers.
	sentFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "network", Name: "peer_sent_failures_total",
		Help: "The total number of send failures from peers.",
	}, []string{"To"})
	// recvFailures counts streams from the peer that ended on a bad frame
	// or a broken connection (not a clean close), and failed snapshot
	// receives.
	recvFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "network", Name: "peer_received_failures_total",
		Help: "The total number of receive failures from peers.",
	}, []string{"From"})
	// rttSec is the round trip of GET /raft/probe to the peer, every
	// probeInterval (etcd's prober does the same on /raft/probing).
	rttSec = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "network", Name: "peer_round_trip_time_seconds",
		Help:    "Round-Trip-Time histogram between peers",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	}, []string{"To"})
	// disconnectedPeers counts streams to the peer lost after the peer
	// had accepted them.
	disconnectedPeers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "network", Name: "disconnected_peers_total",
		Help: "The total number of disconnected peers.",
	}, []string{"Local", "Remote"})

	snapshotSend = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "network", Name: "snapshot_send_success",
		Help: "Total number of successful snapshot sends",
	}, []string{"To"})
	snapshotSendInflights = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "etcd", Subsystem: "network", Name: "snapshot_send_inflights_total",
		Help: "Total number of inflight snapshot sends",
	}, []string{"To"})
	snapshotSendFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "network", Name: "snapshot_send_failures",
		Help: "Total number of snapshot send failures",
	}, []string{"To"})
	snapshotSendSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "network", Name: "snapshot_send_total_duration_seconds",
		Help:    "Total latency distributions of v3 snapshot sends",
		Buckets: prometheus.ExponentialBuckets(0.1, 2, 10),
	}, []string{"To"})
	snapshotReceive = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "network", Name: "snapshot_receive_success",
		Help: "Total number of successful snapshot receives",
	}, []string{"From"})
	snapshotReceiveInflights = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "etcd", Subsystem: "network", Name: "snapshot_receive_inflights_total",
		Help: "Total number of inflight snapshot receives",
	}, []string{"From"})
	snapshotReceiveFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "network", Name: "snapshot_receive_failures",
		Help: "Total number of snapshot receive failures",
	}, []string{"From"})
	snapshotReceiveSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "network", Name: "snapshot_receive_total_duration_seconds",
		Help:    "Total latency distributions of v3 snapshot receives",
		Buckets: prometheus.ExponentialBuckets(0.1, 2, 10),
	}, []string{"From"})
)

func init() {
	metrics.MustRegister(sentBytes, receivedBytes, sentFailures, recvFailures, rttSec, disconnectedPeers,
		snapshotSend, snapshotSendInflights, snapshotSendFailures, snapshotSendSeconds,
		snapshotReceive, snapshotReceiveInflights, snapshotReceiveFailures, snapshotReceiveSeconds)
}

// peerMetrics are the series of one peer, resolved when it is added.
type peerMetrics struct {
	sentBytes, sentFailures, disconnected prometheus.Counter
	rtt                                   prometheus.Observer
}

func newPeerMetrics(local, remote uint64) peerMetrics {
	to := idString(remote)
	return peerMetrics{
		sentBytes:    sentBytes.WithLabelValues(to),
		sentFailures: sentFailures.WithLabelValues(to),
		disconnected: disconnectedPeers.WithLabelValues(idString(local), to),
		rtt:          rttSec.WithLabelValues(to),
	}
}

// probeInterval is how often each peer's round trip is measured (etcd's
// prober: every 4 s on /raft/probing); probeTimeout bounds one probe.
var (
	probeInterval = 4 * time.Second
	probeTimeout  = 5 * time.Second
)

// probe measures the round trip to the peer: GET /raft/probe on the
// address its stream last used, over the peer's own HTTP client (a
// keep-alive connection of its own, beside the stream's), observed into
// etcd_network_peer_round_trip_time_seconds. A failed probe is not
// observed: the stream's failures show in the other families.
func (p *peer) probe() {
	defer p.wg.Done()
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
		base := ""
		if g := p.good.Load(); g != nil {
			base = *g
		} else if urls := *p.urls.Load(); len(urls) > 0 {
			base = urls[0]
		}
		if base == "" || p.checkURL(base) != nil {
			continue
		}
		if d, err := p.roundTrip(base); err == nil {
			p.m.rtt.Observe(d.Seconds())
		} else if p.ctx.Err() == nil {
			p.t.log.Debug("peer probe failed", zap.String("remote-peer-id", idString(p.id)), zap.Error(err))
		}
	}
}

func (p *peer) roundTrip(base string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(p.ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+pathProbe, nil)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("peer answered %s", resp.Status)
	}
	return d, nil
}

// NewCollector reads, at scrape time, which peers the transport knows and
// which it has a live stream to:
//   - etcd_network_active_peers{Local, Remote}: 1 for each peer whose
//     stream it accepted, now up (etcd: both its streams up);
//   - etcd_network_known_peers{Local, Remote}: 1 for this member and each
//     peer it sends to (the membership, as etcd's cluster reports it).
func NewCollector(t *Transport) prometheus.Collector { return &collector{t: t} }

var (
	activePeersDesc = prometheus.NewDesc("etcd_network_active_peers",
		"The current number of active peer connections.", []string{"Local", "Remote"}, nil)
	knownPeersDesc = prometheus.NewDesc("etcd_network_known_peers",
		"The current number of known peers.", []string{"Local", "Remote"}, nil)
)

type collector struct{ t *Transport }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- activePeersDesc
	ch <- knownPeersDesc
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	local := idString(c.t.cfg.ID)
	ch <- prometheus.MustNewConstMetric(knownPeersDesc, prometheus.GaugeValue, 1, local, local)
	if c.t.stopped.Load() {
		return
	}
	for id, p := range *c.t.peers.Load() {
		remote := idString(id)
		ch <- prometheus.MustNewConstMetric(knownPeersDesc, prometheus.GaugeValue, 1, local, remote)
		active := 0.0
		if p.active.Load() != 0 {
			active = 1
		}
		ch <- prometheus.MustNewConstMetric(activePeersDesc, prometheus.GaugeValue, active, local, remote)
	}
}

package console

import (
	"math"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/actors"
)

// Performance: the member's own metrics, sampled from its registry when
// the UI asks (at most once a second, whoever asks; the last samples are
// kept for every viewer), turned into the series the sparklines draw:
// gRPC requests per second, p99 of the request duration, p99 of the WAL
// fsync duration, and the DB size. Rates and quantiles are over the
// interval between two samples, as Prometheus' rate() and
// histogram_quantile() would compute them.

const (
	sampleEvery = time.Second
	keepSamples = 180
	// A gap longer than this (nobody was looking) starts the series over
	// rather than drawing one long average.
	maxSampleGap = time.Minute
)

// The families sampled (etcd's names, as MetaStore exports them).
const (
	famRequests      = "grpc_server_handled_total"
	famRequestTime   = "etcd_server_request_duration_seconds"
	famFsync         = "etcd_disk_wal_fsync_duration_seconds"
	famDBSize        = "etcd_mvcc_db_total_size_in_bytes"
	famDBInUse       = "etcd_mvcc_db_total_size_in_use_in_bytes"
	famRevision      = "etcd_debugging_mvcc_current_revision"
	famCompacted     = "etcd_debugging_mvcc_compact_revision"
	famCompactedKeys = "etcd_debugging_mvcc_db_compaction_keys_total"
	famDefragging    = "etcd_disk_defrag_inflight"
	famLeaderChanges = "etcd_server_leader_changes_seen_total"
)

// sample is the registry's state at one time: counters and gauges by
// family, histograms as cumulative buckets.
type sample struct {
	at     time.Time
	values map[string]float64
	hists  map[string]histogram
}

type histogram struct {
	bounds []float64 // upper bounds, the last +Inf
	counts []float64 // cumulative
}

type sampler struct {
	g     prometheus.Gatherer
	clock actors.Clock

	mu      sync.Mutex
	samples []sample
}

func newSampler(g prometheus.Gatherer, clock actors.Clock) *sampler {
	return &sampler{g: g, clock: clock}
}

// point is one interval of the series.
type point struct {
	At         int64   `json:"t"` // unix ms, the interval's end
	Requests   float64 `json:"requestsPerSec"`
	RequestP99 float64 `json:"requestP99"` // seconds; NaN-free: 0 with no requests
	FsyncP99   float64 `json:"fsyncP99"`
	DBSize     float64 `json:"dbSize"`
}

type perfView struct {
	Points []point `json:"points"`
	// The latest sample's gauges (progress of compaction and defrag).
	Now map[string]float64 `json:"now"`
}

// take samples the registry if the last sample is older than
// sampleEvery, and returns the series.
func (s *sampler) take() (perfView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	if n := len(s.samples); n == 0 || now.Sub(s.samples[n-1].at) >= sampleEvery {
		sm, err := s.gather(now)
		if err != nil {
			return perfView{}, err
		}
		if n > 0 && now.Sub(s.samples[n-1].at) > maxSampleGap {
			s.samples = s.samples[:0]
		}
		s.samples = append(s.samples, sm)
		if len(s.samples) > keepSamples {
			s.samples = append(s.samples[:0], s.samples[len(s.samples)-keepSamples:]...)
		}
	}
	out := perfView{Points: []point{}, Now: s.samples[len(s.samples)-1].values}
	for i := 1; i < len(s.samples); i++ {
		a, b := s.samples[i-1], s.samples[i]
		dt := b.at.Sub(a.at).Seconds()
		out.Points = append(out.Points, point{
			At:         b.at.UnixMilli(),
			Requests:   math.Max(0, b.values[famRequests]-a.values[famRequests]) / dt,
			RequestP99: quantile(0.99, a.hists[famRequestTime], b.hists[famRequestTime]),
			FsyncP99:   quantile(0.99, a.hists[famFsync], b.hists[famFsync]),
			DBSize:     b.values[famDBSize],
		})
	}
	return out, nil
}

func (s *sampler) gather(at time.Time) (sample, error) {
	sm := sample{at: at, values: map[string]float64{}, hists: map[string]histogram{}}
	if s.g == nil {
		return sm, nil
	}
	fams, err := s.g.Gather()
	if err != nil {
		return sm, err
	}
	for _, f := range fams {
		switch name := f.GetName(); name {
		case famRequestTime, famFsync:
			sm.hists[name] = sumHistograms(f.Metric)
		case famRequests, famDBSize, famDBInUse, famRevision, famCompacted, famCompactedKeys, famDefragging, famLeaderChanges:
			sm.values[name] = sumValues(f.Metric)
		}
	}
	return sm, nil
}

// gatherValue is one family's value (summed over its series), 0 if the
// gatherer has none.
func gatherValue(g prometheus.Gatherer, family string) float64 {
	if g == nil {
		return 0
	}
	fams, err := g.Gather()
	if err != nil {
		return 0
	}
	for _, f := range fams {
		if f.GetName() == family {
			return sumValues(f.Metric)
		}
	}
	return 0
}

func sumValues(ms []*dto.Metric) float64 {
	var v float64
	for _, m := range ms {
		switch {
		case m.Counter != nil:
			v += m.Counter.GetValue()
		case m.Gauge != nil:
			v += m.Gauge.GetValue()
		case m.Untyped != nil:
			v += m.Untyped.GetValue()
		}
	}
	return v
}

// sumHistograms adds the series of a histogram family (same buckets).
func sumHistograms(ms []*dto.Metric) histogram {
	var h histogram
	for _, m := range ms {
		hm := m.Histogram
		if hm == nil {
			continue
		}
		if h.bounds == nil {
			for _, b := range hm.Bucket {
				h.bounds = append(h.bounds, b.GetUpperBound())
			}
			h.bounds = append(h.bounds, math.Inf(1))
			h.counts = make([]float64, len(h.bounds))
		}
		if len(hm.Bucket)+1 != len(h.bounds) {
			continue
		}
		for i, b := range hm.Bucket {
			h.counts[i] += float64(b.GetCumulativeCount())
		}
		h.counts[len(h.counts)-1] += float64(hm.GetSampleCount())
	}
	return h
}

// quantile is histogram_quantile(q) of the observations made between two
// samples of a histogram: linear within the bucket the rank falls in, the
// highest finite bound for the +Inf bucket; 0 with no observations.
func quantile(q float64, before, after histogram) float64 {
	if len(after.counts) == 0 || len(before.counts) != len(after.counts) {
		before = histogram{counts: make([]float64, len(after.counts))}
	}
	n := len(after.counts)
	if n == 0 {
		return 0
	}
	delta := make([]float64, n)
	for i := range delta {
		delta[i] = after.counts[i] - before.counts[i]
	}
	total := delta[n-1]
	if total <= 0 {
		return 0
	}
	rank := q * total
	i := sort.Search(n, func(i int) bool { return delta[i] >= rank })
	if i == n-1 {
		if n < 2 {
			return 0
		}
		return after.bounds[n-2]
	}
	lower, below := 0.0, 0.0
	if i > 0 {
		lower, below = after.bounds[i-1], delta[i-1]
	}
	inBucket := delta[i] - below
	if inBucket <= 0 {
		return after.bounds[i]
	}
	return lower + (after.bounds[i]-lower)*(rank-below)/inBucket
}

// serveMetrics is the sparkline series.
func (c *Console) serveMetrics(_ http.ResponseWriter, _ *http.Request, _ *session) reply {
	v, err := c.sampler.take()
	if err != nil {
		return errorReply(http.StatusInternalServerError, err.Error())
	}
	return ok(v)
}

type compactRequest struct {
	Revision int64 `json:"revision"`
	// Physical waits until the compacted versions are removed from
	// storage (etcdctl compact --physical).
	Physical bool `json:"physical"`
}

// serveCompact compacts the key space's history up to a revision. The UI
// shows the compaction's progress from the metrics meanwhile.
func (c *Console) serveCompact(_ http.ResponseWriter, r *http.Request, s *session) reply {
	var req compactRequest
	if err := decode(r, &req); err != nil {
		return badRequest(err.Error())
	}
	ctx, cancel := asUser(r, s, longTimeout)
	defer cancel()
	start := c.cfg.Clock.Now()
	rep := ok(struct{}{})
	if _, err := pb.NewKVClient(c.cfg.Conn).Compact(ctx, &pb.CompactionRequest{Revision: req.Revision, Physical: req.Physical}); err != nil {
		rep = c.fail(s, err)
	}
	c.logAction(r, s, "compact", rep, zap.Int64("revision", req.Revision), zap.Bool("physical", req.Physical),
		zap.Duration("took", c.cfg.Clock.Now().Sub(start)))
	return rep
}

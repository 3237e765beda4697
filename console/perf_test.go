package console

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastore/metastore/testkit"
)

// The sparklines' series: the rate of a counter and the p99 of a
// histogram over each interval between samples, as Prometheus' rate()
// and histogram_quantile() compute them; a sample at most once a second
// whoever asks; a long gap starts the series over.
func TestSamplerSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	handled := prometheus.NewCounter(prometheus.CounterOpts{Name: famRequests})
	fsync := prometheus.NewHistogram(prometheus.HistogramOpts{Name: famFsync, Buckets: []float64{0.001, 0.002, 0.004, 0.008}})
	size := prometheus.NewGauge(prometheus.GaugeOpts{Name: famDBSize})
	reg.MustRegister(handled, fsync, size)
	clock := testkit.NewFakeClock(time.Unix(1000, 0))
	s := newSampler(reg, clock)

	take := func() perfView {
		t.Helper()
		v, err := s.take()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := take(); len(v.Points) != 0 {
		t.Fatalf("one sample makes no interval: %+v", v.Points)
	}
	// 2 s later: 200 requests; 100 fsyncs, 98 of them under 1 ms and 2 in
	// (4 ms, 8 ms]: the p99 is in that bucket, halfway (rank 99 of 100).
	clock.Advance(2 * time.Second)
	handled.Add(200)
	for range 98 {
		fsync.Observe(0.0005)
	}
	fsync.Observe(0.005)
	fsync.Observe(0.007)
	size.Set(4096)
	v := take()
	if len(v.Points) != 1 {
		t.Fatalf("points %+v", v.Points)
	}
	p := v.Points[0]
	if p.Requests != 100 || p.DBSize != 4096 || math.Abs(p.FsyncP99-0.006) > 1e-9 || p.RequestP99 != 0 {
		t.Fatalf("point %+v, want 100 req/s, fsync p99 6 ms, no request latency", p)
	}
	// Asked again within the second: the same sample, not a new one.
	clock.Advance(500 * time.Millisecond)
	handled.Add(1000)
	if v := take(); len(v.Points) != 1 {
		t.Fatalf("sampled twice within a second: %+v", v.Points)
	}
	// The next interval sees only its own fsyncs: none, so p99 0.
	clock.Advance(500 * time.Millisecond)
	if v := take(); len(v.Points) != 2 || v.Points[1].FsyncP99 != 0 || v.Points[1].Requests != 1000 {
		t.Fatalf("second interval %+v", v.Points)
	}
	clock.Advance(2 * time.Minute)
	if v := take(); len(v.Points) != 0 {
		t.Fatalf("after a gap the series starts over: %+v", v.Points)
	}
}

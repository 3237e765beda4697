package testkit

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/metastore/metastore/metrics"
)

// Registry is a member's metrics registry with own's collectors added
// (metrics.NewRegistry), failing t if one cannot be registered.
func Registry(t testing.TB, own ...prometheus.Collector) *prometheus.Registry {
	t.Helper()
	reg, err := metrics.NewRegistry(own...)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// Scrape is one gather of a Prometheus registry, by family name: what the
// metrics tests of each package read counters, gauges and histograms from.
type Scrape map[string]*dto.MetricFamily

// Gather scrapes g, failing t on an error.
func Gather(t testing.TB, g prometheus.Gatherer) Scrape {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := Scrape{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// Value is family name's first sample whose labels include the given
// name/value pairs: a counter's or gauge's value, a histogram's count.
// ok is false when there is none.
func (s Scrape) Value(name string, labels ...string) (v float64, ok bool) {
	m := s.sample(name, labels)
	switch {
	case m == nil:
		return 0, false
	case m.Counter != nil:
		return m.Counter.GetValue(), true
	case m.Gauge != nil:
		return m.Gauge.GetValue(), true
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount()), true
	}
	return 0, false
}

// Must is Value, failing t when there is no such sample.
func (s Scrape) Must(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	v, ok := s.Value(name, labels...)
	if !ok {
		t.Fatalf("no %s%v in the scrape", name, labels)
	}
	return v
}

// Sum is a histogram sample's sum (0 when there is none).
func (s Scrape) Sum(name string, labels ...string) float64 {
	return s.sample(name, labels).GetHistogram().GetSampleSum()
}

// Total sums family name's samples whose labels include the given pairs
// (counters' and gauges' values, histograms' counts); 0 when there is none.
func (s Scrape) Total(name string, labels ...string) float64 {
	var sum float64
	for _, m := range s[name].GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

func (s Scrape) sample(name string, labels []string) *dto.Metric {
	for _, m := range s[name].GetMetric() {
		if hasLabels(m, labels) {
			return m
		}
	}
	return nil
}

// hasLabels reports whether m has every name/value pair of labels.
func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, lp := range m.Label {
			found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
		}
		if !found {
			return false
		}
	}
	return true
}

package testkit

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

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

// Sum is a histogram sample's sum (0 when there is none).
func (s Scrape) Sum(name string, labels ...string) float64 {
	return s.sample(name, labels).GetHistogram().GetSampleSum()
}

func (s Scrape) sample(name string, labels []string) *dto.Metric {
	f := s[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
			}
			if !found {
				continue next
			}
		}
		return m
	}
	return nil
}

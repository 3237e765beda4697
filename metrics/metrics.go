// Package metrics is MetaStore's Prometheus registry: each subsystem
// package declares its own families (under etcd's names where etcd has
// the same meaning, under metastore_* otherwise) and registers them here
// from its init, as etcd's packages do with the default registry. A member
// then builds one Registry that gathers those process-wide families plus
// the collectors that read its own published views at scrape time.
//
// Why process-wide counters: they are updated on request paths, where a
// prometheus Counter is one atomic add; threading a per-member struct
// through every actor's config would buy nothing for a process that runs
// one member (in-process tests that run several see the sums, as etcd's
// integration tests do). State that belongs to one member (leader, ids,
// sizes) is read by per-member collectors from its views, costing nothing
// between scrapes.
package metrics

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

var (
	mu     sync.Mutex
	global []prometheus.Collector
)

// MustRegister adds process-wide collectors (package-level counters and
// histograms) to every Registry built after it; call it from init.
func MustRegister(cs ...prometheus.Collector) {
	mu.Lock()
	defer mu.Unlock()
	global = append(global, cs...)
}

// NewRegistry builds a member's registry: the Go runtime and process
// collectors (process_resident_memory_bytes is what `etcdctl check
// datascale` reads), every process-wide family, and the member's own
// collectors.
func NewRegistry(own ...prometheus.Collector) (*prometheus.Registry, error) {
	r := prometheus.NewRegistry()
	mu.Lock()
	cs := append([]prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}, global...)
	mu.Unlock()
	for _, c := range append(cs, own...) {
		if err := r.Register(c); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Handler serves g in Prometheus' text format (or OpenMetrics when the
// scraper asks for it), counting its own requests as etcd's handler does
// (promhttp_metric_handler_requests_*).
func Handler(r *prometheus.Registry) http.Handler {
	return promhttp.InstrumentMetricHandler(r, promhttp.HandlerFor(r, promhttp.HandlerOpts{}))
}

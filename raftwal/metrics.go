package raftwal

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastore/metastore/metrics"
)

// segmentsGauge is how many segment files the raft log's WAL holds: it
// grows while the log is not truncated (a follower far behind, the store
// not applying) and falls back when it is.
var segmentsGauge = prometheus.NewGauge(prometheus.GaugeOpts{
	Name: "metastore_raft_wal_segments",
	Help: "Segment files of the raft log's write-ahead log.",
})

func init() { metrics.MustRegister(segmentsGauge) }

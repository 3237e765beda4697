package storeactor

import (
	"strconv"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// pebble's health, read from DB.Metrics() at scrape time (NewCollector):
// what tells an operator that the LSM is falling behind before latency
// does. Counters are pebble's own, since the DB was opened.
var (
	compactionDebtDesc = prometheus.NewDesc("metastore_pebble_compaction_debt_bytes",
		"Estimated bytes pebble must compact for the LSM to reach a stable shape.", nil, nil)
	l0SublevelsDesc = prometheus.NewDesc("metastore_pebble_l0_sublevels",
		"Sublevels in L0: each is read by every read that reaches L0 (write stalls begin at 1000 files or many sublevels).", nil, nil)
	l0FilesDesc = prometheus.NewDesc("metastore_pebble_l0_files",
		"Sstables in L0.", nil, nil)
	readAmpDesc = prometheus.NewDesc("metastore_pebble_read_amplification",
		"Read amplification: memtables plus L0 sublevels plus non-empty levels below.", nil, nil)
	levelFilesDesc = prometheus.NewDesc("metastore_pebble_level_files",
		"Sstables in each LSM level.", []string{"level"}, nil)
	levelBytesDesc = prometheus.NewDesc("metastore_pebble_level_size_bytes",
		"Bytes of the sstables in each LSM level.", []string{"level"}, nil)
	cacheHitsDesc = prometheus.NewDesc("metastore_pebble_block_cache_hits_total",
		"Block cache hits (hit ratio: rate(hits) / (rate(hits) + rate(misses))).", nil, nil)
	cacheMissesDesc = prometheus.NewDesc("metastore_pebble_block_cache_misses_total",
		"Block cache misses: blocks read from the sstable files.", nil, nil)
	cacheBytesDesc = prometheus.NewDesc("metastore_pebble_block_cache_size_bytes",
		"Bytes held by the block cache.", nil, nil)
	memtableBytesDesc = prometheus.NewDesc("metastore_pebble_memtable_size_bytes",
		"Bytes allocated by memtables (and large batches queued to be flushed).", nil, nil)
	memtableCountDesc = prometheus.NewDesc("metastore_pebble_memtables",
		"Memtables: the mutable one and those waiting to be flushed.", nil, nil)
	flushesDesc = prometheus.NewDesc("metastore_pebble_flushes_total",
		"Memtable flushes.", nil, nil)
	compactionsDesc = prometheus.NewDesc("metastore_pebble_compactions_total",
		"Compactions finished.", nil, nil)
	compactionsRunningDesc = prometheus.NewDesc("metastore_pebble_compactions_in_progress",
		"Compactions running now.", nil, nil)
	walBytesDesc = prometheus.NewDesc("metastore_pebble_wal_bytes_written_total",
		"Bytes written to pebble's write-ahead log (the store's batches; the raft log has its own).", nil, nil)
	walFsyncDesc = prometheus.NewDesc("metastore_pebble_wal_fsync_duration_seconds",
		"Latency of pebble's WAL fsyncs alone (etcd_disk_wal_fsync_duration_seconds times the raft actor's whole synced commit).", nil, nil)
	tableItersDesc = prometheus.NewDesc("metastore_pebble_table_iterators",
		"Open sstable iterators (reads in progress hold some).", nil, nil)
)

func describePebble(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{compactionDebtDesc, l0SublevelsDesc, l0FilesDesc, readAmpDesc,
		levelFilesDesc, levelBytesDesc, cacheHitsDesc, cacheMissesDesc, cacheBytesDesc, memtableBytesDesc,
		memtableCountDesc, flushesDesc, compactionsDesc, compactionsRunningDesc, walBytesDesc, walFsyncDesc,
		tableItersDesc} {
		ch <- d
	}
}

func collectPebble(ch chan<- prometheus.Metric, m *pebble.Metrics) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(compactionDebtDesc, float64(m.Compact.EstimatedDebt))
	gauge(l0SublevelsDesc, float64(m.Levels[0].Sublevels))
	gauge(l0FilesDesc, float64(m.Levels[0].TablesCount))
	gauge(readAmpDesc, float64(m.ReadAmp()))
	for i := range m.Levels {
		l := strconv.Itoa(i)
		gauge(levelFilesDesc, float64(m.Levels[i].TablesCount), l)
		gauge(levelBytesDesc, float64(m.Levels[i].TablesSize), l)
	}
	counter(cacheHitsDesc, float64(m.BlockCache.Hits))
	counter(cacheMissesDesc, float64(m.BlockCache.Misses))
	gauge(cacheBytesDesc, float64(m.BlockCache.Size))
	gauge(memtableBytesDesc, float64(m.MemTable.Size))
	gauge(memtableCountDesc, float64(m.MemTable.Count))
	counter(flushesDesc, float64(m.Flush.Count))
	counter(compactionsDesc, float64(m.Compact.Count))
	gauge(compactionsRunningDesc, float64(m.Compact.NumInProgress))
	counter(walBytesDesc, float64(m.WAL.BytesWritten))
	gauge(tableItersDesc, float64(m.TableIters))
	if h := m.LogWriter.FsyncLatency; h != nil {
		if hm, ok := fsyncSeconds(h); ok {
			ch <- hm
		}
	}
}

// fsyncSeconds re-exports pebble's WAL fsync histogram, which observes
// nanoseconds, in seconds.
func fsyncSeconds(h prometheus.Histogram) (prometheus.Metric, bool) {
	var d dto.Metric
	if err := h.Write(&d); err != nil || d.Histogram == nil {
		return nil, false
	}
	buckets := make(map[float64]uint64, len(d.Histogram.Bucket))
	for _, b := range d.Histogram.Bucket {
		buckets[b.GetUpperBound()/1e9] = b.GetCumulativeCount()
	}
	m, err := prometheus.NewConstHistogram(walFsyncDesc, d.Histogram.GetSampleCount(), d.Histogram.GetSampleSum()/1e9, buckets)
	return m, err == nil
}

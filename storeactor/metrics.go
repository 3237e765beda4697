package storeactor

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastore/metastore/metrics"
)

// The store's process-wide families, under etcd's names (mvcc, backend,
// txn, snap). Each is updated where the work is done, at most one atomic
// add per counter per apply batch on the write path (see mvccOps) and one
// per request on the read path; the member's state (sizes, revisions,
// keys, quota) is read at scrape time by NewCollector.
var (
	// etcd counts the operations of its mvcc read and write txns; so does
	// the store, with the same units (mvccOps).
	rangeCounter = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "mvcc", Name: "range_total",
		Help: "Total number of ranges seen by this member.",
	})
	putCounter = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "mvcc", Name: "put_total",
		Help: "Total number of puts seen by this member.",
	})
	deleteCounter = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "mvcc", Name: "delete_total",
		Help: "Total number of deletes seen by this member.",
	})
	txnCounter = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "mvcc", Name: "txn_total",
		Help: "Total number of txns seen by this member.",
	})
	totalPutSize = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "total_put_size_in_bytes",
		Help: "The total size of put kv pairs seen by this member.",
	})

	// applyBatchEntries is how many committed entries each apply batch
	// (one pebble batch, one View published) carried (MetaStore's own).
	applyBatchEntries = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "metastore_store_apply_batch_entries",
		Help:    "Committed raft entries applied by each store batch (one pebble commit, one published view).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 13), // 1 .. 4096
	})
	// commitSec times the store's pebble batch commits: every apply batch
	// and every physical compaction step (unsynced: the raft actor's
	// synced log write makes them durable).
	commitSec = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "disk", Name: "backend_commit_duration_seconds",
		Help:    "The latency distributions of commit called by backend.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	// applySec times the apply of each raft request in the store actor
	// (the request's part of its batch, without the batch's commit).
	applySec = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "server", Name: "apply_duration_seconds",
		Help:    "The latency distributions of v2 apply called by backend.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 20),
	}, []string{"version", "op", "success"})
	slowApplies = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "slow_apply_total",
		Help: "The total number of slow apply requests (likely overloaded from slow disk).",
	})
	// rangeSec times Range requests served by the Reader (and the rare
	// Range applied through raft), as etcd's txn.Range.
	rangeSec = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "server", Name: "range_duration_seconds",
		Help:    "The latency distributions of txn.Range",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 20),
	}, []string{"success"})
	rangeSecOK, rangeSecFailed = rangeSec.WithLabelValues("true"), rangeSec.WithLabelValues("false")

	// Physical compaction (compact.go) in etcd's terms: a pause is one
	// bounded compaction step (the store actor applies nothing during
	// it), the total runs from the first step to the last, and the keys
	// are the versions deleted.
	dbCompactionPauseMs = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "db_compaction_pause_duration_milliseconds",
		Help:    "Bucketed histogram of db compaction pause duration.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 13),
	})
	dbCompactionTotalMs = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "db_compaction_total_duration_milliseconds",
		Help:    "Bucketed histogram of db compaction total duration.",
		Buckets: prometheus.ExponentialBuckets(100, 2, 14),
	})
	dbCompactionLast = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "db_compaction_last",
		Help: "The unix time of the last db compaction. Resets to 0 on start.",
	})
	dbCompactionKeys = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "db_compaction_keys_total",
		Help: "Total number of db keys compacted.",
	})

	// defragSec times Defragment: one manual compaction of the whole key
	// space, while reads and writes go on (etcd's stops the world).
	defragSec = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "disk", Name: "backend_defrag_duration_seconds",
		Help:    "The latency distribution of backend defragmentation.",
		Buckets: prometheus.ExponentialBuckets(.1, 2, 13),
	})
	defragInflight = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "etcd", Subsystem: "disk", Name: "defrag_inflight",
		Help: "Whether or not defrag is active on the member. 1 means active, 0 means not.",
	})
	// snapshotTransferSec times a snapshot (Maintenance.Snapshot, or the
	// data of a raft snapshot to a follower) from its pebble checkpoint to
	// its Close, as etcd's from its bbolt read txn to its Close.
	snapshotTransferSec = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "disk", Name: "backend_snapshot_duration_seconds",
		Help:    "The latency distribution of backend snapshots.",
		Buckets: prometheus.ExponentialBuckets(.01, 2, 17),
	})
	hashSec = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "mvcc", Name: "hash_duration_seconds",
		Help:    "The latency distribution of storage hash operation.",
		Buckets: prometheus.ExponentialBuckets(.01, 2, 15),
	})
	hashRevSec = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "mvcc", Name: "hash_rev_duration_seconds",
		Help:    "The latency distribution of storage hash by revision operation.",
		Buckets: prometheus.ExponentialBuckets(.01, 2, 15),
	})
	// A received snapshot (ReceiveCheckpoint): etcd saves one .snap.db
	// file; MetaStore unpacks a pebble checkpoint's files. save_total is
	// the whole receive, fsync the syncs of its files and folder.
	snapDBSaveSec = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "snap_db", Name: "save_total_duration_seconds",
		Help:    "The total latency distributions of v3 snapshot save",
		Buckets: prometheus.ExponentialBuckets(0.1, 2, 10),
	})
	snapDBFsyncSec = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "snap_db", Name: "fsync_duration_seconds",
		Help:    "The latency distributions of fsyncing .snap.db file",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})

	// readErrors counts the Reader's reads that failed for want of the
	// store: pebble's I/O errors, corrupt records (see Reader.readError).
	// The caller gets the error (a client: gRPC Unknown, as etcd answers
	// an error it has no code for); the member serves on.
	readErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "metastore_store_read_errors_total",
		Help: "Reads that failed for want of the store (pebble I/O errors, corrupt records), not because of the request.",
	})

	// pebble's write stalls, counted by the event listener (pebblelog.go).
	writeStalls = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "metastore_pebble_write_stalls_total",
		Help: "Write stalls pebble began: writes held because flushes or compactions fell behind.",
	})
	writeStallSeconds = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "metastore_pebble_write_stall_duration_seconds_total",
		Help: "Total time writes were held by pebble's write stalls.",
	})

	// keyFilterBytes is the memory of the filter of keys never written
	// (keyfilter.go), which grows with the keyspace up to its cap.
	keyFilterBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "metastore_store_key_filter_bytes",
		Help: "Bytes of the store's filter of keys never written; 0 once it reached its cap and was dropped.",
	})
	// countMirrorBytes is the estimated memory of the count index's
	// level 1 mirror (countwrite.go), which grows with the keyspace up
	// to its cap.
	countMirrorBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "metastore_store_count_mirror_bytes",
		Help: "Estimated bytes of the store's in-memory copy of the range count index's first level; 0 once it reached its cap and is read from pebble.",
	})
)

func init() {
	metrics.MustRegister(rangeCounter, putCounter, deleteCounter, txnCounter, totalPutSize,
		commitSec, applySec, slowApplies, rangeSec,
		dbCompactionPauseMs, dbCompactionTotalMs, dbCompactionLast, dbCompactionKeys,
		defragSec, defragInflight, snapshotTransferSec, hashSec, hashRevSec, snapDBSaveSec, snapDBFsyncSec,
		writeStalls, writeStallSeconds, applyBatchEntries, readErrors, keyFilterBytes, countMirrorBytes)
}

// mvccOps counts operations as etcd's mvcc metrics do: the ranges, puts
// and deletes of each etcd txn (a unit: a Range or Put request is one, a
// writing Txn two — its compares, then its ops — a lease revoke one with a
// delete per attached key), and as txns the units of more than one
// operation. The store sums a batch's and adds it once (report).
type mvccOps struct {
	ranges, puts, deletes, putSize, txns int64
	unit                                 int64 // operations of the unit in progress
}

func (o *mvccOps) rng(n int64) { o.ranges += n; o.unit += n }
func (o *mvccOps) del(n int64) { o.deletes += n; o.unit += n }
func (o *mvccOps) put(size int64) {
	o.puts++
	o.putSize += size
	o.unit++
}

// end closes the unit in progress.
func (o *mvccOps) end() {
	if o.unit > 1 {
		o.txns++
	}
	o.unit = 0
}

func (o *mvccOps) add(p *mvccOps) {
	o.ranges += p.ranges
	o.puts += p.puts
	o.deletes += p.deletes
	o.putSize += p.putSize
	o.txns += p.txns
}

// report adds the counts to the process-wide counters.
func (o *mvccOps) report() {
	if o.ranges > 0 {
		rangeCounter.Add(float64(o.ranges))
	}
	if o.puts > 0 {
		putCounter.Add(float64(o.puts))
		totalPutSize.Add(float64(o.putSize))
	}
	if o.deletes > 0 {
		deleteCounter.Add(float64(o.deletes))
	}
	if o.txns > 0 {
		txnCounter.Add(float64(o.txns))
	}
}

// applyObservers are the apply_duration_seconds children, resolved on
// first use (only the request types a member sees are exposed, as etcd
// does) and then read without the vector's lock. Shared by every Store.
var applyObservers [len(requestTypes)][2]atomic.Pointer[observer]

type observer struct{ prometheus.Observer }

func observeApply(op int, success bool, d time.Duration) {
	i := 0
	if success {
		i = 1
	}
	cell := &applyObservers[op][i]
	o := cell.Load()
	if o == nil {
		o = &observer{applySec.WithLabelValues("v3", requestTypes[op], strconv.FormatBool(success))}
		cell.Store(o)
	}
	o.Observe(d.Seconds())
}

func observeRange(success bool, start time.Time) {
	if success {
		rangeSecOK.Observe(time.Since(start).Seconds())
	} else {
		rangeSecFailed.Observe(time.Since(start).Seconds())
	}
}

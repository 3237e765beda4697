package raftactor

import (
	"strconv"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastore/metastore/metrics"
)

// The raft actor's families, under etcd's names (etcdserver, wal, snap).
// Counters and histograms updated as the actor works are process-wide (one
// atomic add each); what describes one member's raft state (leader, ids,
// commit index) is read from its View at scrape time (NewCollector).
var (
	// groupCommitEntries is the group commit at work: the log entries each
	// synced write of a Ready made durable with its one fsync (MetaStore's
	// own; etcd has no such family).
	groupCommitEntries = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "metastore_raft_synced_write_entries",
		Help:    "Raft log entries made durable by each synced write (one fsync): the group commit's batch size.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 13), // 1 .. 4096
	})
	leaderChanges = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "leader_changes_seen_total",
		Help: "The number of leader changes seen.",
	})
	// heartbeatSendFailures counts, as etcd's leader does, heartbeats sent
	// more than two heartbeat intervals after the previous one to the same
	// follower: the raft actor was late (a slow disk under its synced
	// writes, most likely).
	heartbeatSendFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "heartbeat_send_failures_total",
		Help: "The total number of leader heartbeat send failures (likely overloaded from slow disk).",
	})
	// proposalsPending is the proposals this member's raft actor holds for
	// its clients: received, not yet applied by the local store (etcd: the
	// requests waiting between Propose and their apply).
	proposalsPending = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "etcd", Subsystem: "server", Name: "proposals_pending",
		Help: "The current number of pending proposals to commit.",
	})
	learnerPromoteSucceed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "learner_promote_successes",
		Help: "The total number of successful learner promotions while this member is leader.",
	})
	// applySnapshotInProgress is 1 while the store installs a snapshot
	// from the leader (the raft actor waits for it).
	applySnapshotInProgress = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "etcd", Subsystem: "server", Name: "snapshot_apply_in_progress_total",
		Help: "1 if the server is applying the incoming snapshot. 0 if none.",
	})
	// slowReadIndexes counts read index requests given up on after an
	// election timeout without an answer and issued again.
	slowReadIndexes = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "slow_read_indexes_total",
		Help: "The total number of pending read indexes not in sync with leader's or timed out read index requests.",
	})
	// readIndexesFailed counts batches of linearizable reads failed for
	// want of a leader, or because the leader changed under them.
	readIndexesFailed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "read_indexes_failed_total",
		Help: "The total number of failed read indexes seen.",
	})

	// proposalsLost counts proposals whose client was told the outcome is
	// unknown (etcd's "request timed out, possibly due to previous leader
	// failure") before its timeout: the entry left this member's log, or
	// was not in it when the leader changed (MetaStore's own family).
	proposalsLost = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "metastore_raft_proposals_lost_total",
		Help: "Proposals answered as of unknown outcome because they left this member's raft log or were not in it at a leader change.",
	})

	// logReads and logReadFailures count the reads raft makes of log
	// entries older than its memory tier (for a follower catching up), and
	// those that failed (the follower is sent a snapshot instead).
	logReads = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "metastore_raft_log_disk_reads_total",
		Help: "Reads of raft log entries older than those held in memory, from the data dir.",
	})
	logReadFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "metastore_raft_log_disk_read_failures_total",
		Help: "Failed reads of raft log entries from the data dir; the follower that needed them is sent a snapshot.",
	})

	// walFsyncSec times each synced commit of a Ready's raft log batch:
	// MetaStore's WAL is pebble's, which writes and fsyncs a batch in one
	// call, so this is write plus fsync (etcd: the fdatasync alone).
	walFsyncSec = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "disk", Name: "wal_fsync_duration_seconds",
		Help:    "The latency distributions of fsync called by WAL.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	// walWriteSec times each raft log batch committed without a sync (a
	// Ready raft did not ask to be synced); synced ones are in
	// walFsyncSec.
	walWriteSec = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "disk", Name: "wal_write_duration_seconds",
		Help:    "The latency distributions of write called by WAL.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	// walWriteBytes is the size of every raft log batch written (entries
	// and hard state, as pebble batch records). A gauge, as etcd's.
	walWriteBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "etcd", Subsystem: "disk", Name: "wal_write_bytes_total",
		Help: "Total number of bytes written in WAL.",
	})

	// The snap families follow etcd's raft snapshot: MetaStore's is the
	// truncation point written every --snapshot-count applied entries
	// (and when installing a leader's snapshot), one synced pebble batch
	// with the snapshot metadata and the deletion of the dropped entries.
	snapSaveSec = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd_debugging", Subsystem: "snap", Name: "save_total_duration_seconds",
		Help:    "The total latency distributions of save called by snapshot.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	snapMarshallingSec = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd_debugging", Subsystem: "snap", Name: "save_marshalling_duration_seconds",
		Help:    "The marshalling cost distributions of save called by snapshot.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	snapFsyncSec = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "snap", Name: "fsync_duration_seconds",
		Help:    "The latency distributions of fsync called by snap.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
)

func init() {
	metrics.MustRegister(leaderChanges, heartbeatSendFailures, proposalsPending, learnerPromoteSucceed,
		applySnapshotInProgress, slowReadIndexes, readIndexesFailed,
		walFsyncSec, walWriteSec, walWriteBytes, snapSaveSec, snapMarshallingSec, snapFsyncSec,
		groupCommitEntries, proposalsLost, logReads, logReadFailures)
}

// NewCollector reads one member's raft state from the View its raft actor
// publishes, at scrape time: etcd_server_has_leader, is_leader,
// is_learner, id and proposals_committed_total (raft's commit index, as
// etcd reports it; proposals_applied_total is the store's, see
// storeactor.NewCollector).
func NewCollector(view *ViewRef) prometheus.Collector {
	return &collector{view: view}
}

var (
	hasLeaderDesc = prometheus.NewDesc("etcd_server_has_leader",
		"Whether or not a leader exists. 1 is existence, 0 is not.", nil, nil)
	isLeaderDesc = prometheus.NewDesc("etcd_server_is_leader",
		"Whether or not this member is a leader. 1 if is, 0 otherwise.", nil, nil)
	isLearnerDesc = prometheus.NewDesc("etcd_server_is_learner",
		"Whether or not this member is a learner. 1 if is, 0 otherwise.", nil, nil)
	serverIDDesc = prometheus.NewDesc("etcd_server_id",
		"Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.", []string{"server_id"}, nil)
	committedDesc = prometheus.NewDesc("etcd_server_proposals_committed_total",
		"The total number of consensus proposals committed.", nil, nil)
)

type collector struct{ view *ViewRef }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- hasLeaderDesc
	ch <- isLeaderDesc
	ch <- isLearnerDesc
	ch <- serverIDDesc
	ch <- committedDesc
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	v := c.view.Load()
	ch <- prometheus.MustNewConstMetric(hasLeaderDesc, prometheus.GaugeValue, b2f(v.Lead != 0))
	ch <- prometheus.MustNewConstMetric(isLeaderDesc, prometheus.GaugeValue, b2f(v.Lead != 0 && v.Lead == v.ID))
	ch <- prometheus.MustNewConstMetric(isLearnerDesc, prometheus.GaugeValue, b2f(v.IsLearner))
	ch <- prometheus.MustNewConstMetric(serverIDDesc, prometheus.GaugeValue, 1, strconv.FormatUint(v.ID, 16))
	ch <- prometheus.MustNewConstMetric(committedDesc, prometheus.GaugeValue, float64(v.Committed))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// isStopping reports whether m is one of the last messages of an actor
// being stopped: from then on it holds no proposals.
func isStopping(m any) bool {
	switch m.(type) {
	case *actor.Stopping, *actor.Stopped:
		return true
	}
	return false
}

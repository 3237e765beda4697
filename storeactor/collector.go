package storeactor

import (
	"strconv"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// NewCollector reads one member's store at scrape time, from the View the
// store publishes and from pebble's own metrics: nothing is kept up to
// date between scrapes.
//
// etcd's families, with MetaStore's meaning where it differs:
//   - etcd_mvcc_db_total_size_in_bytes: pebble's disk usage (sstables,
//     WAL, manifest, including obsolete files not yet deleted);
//   - etcd_mvcc_db_total_size_in_use_in_bytes: View.LiveBytes, the
//     versions and history compaction has not removed — what the quota
//     is checked against;
//   - etcd_debugging_mvcc_keys_total: keys with a live newest version
//     (etcd counts the keys of its index, deleted ones until compacted);
//   - etcd_debugging_mvcc_current_revision, compact_revision (-1 before
//     any compaction, as etcd);
//   - etcd_debugging_auth_revision;
//   - etcd_server_proposals_applied_total: the store's applied index;
//   - etcd_server_quota_backend_bytes: the quota the member runs with
//     now (Reader.QuotaBytes: etcd's 2 GiB for 0; negative as is);
//   - etcd_debugging_server_alarms{server_id, alarm_type}: 1 per active
//     alarm.
//
// and pebble's health under metastore_pebble_* (see pebbleCollector).
func NewCollector(db *pebble.DB, reader *Reader) prometheus.Collector {
	return &collector{db: db, reader: reader}
}

var (
	dbSizeDesc = prometheus.NewDesc("etcd_mvcc_db_total_size_in_bytes",
		"Total size of the underlying database physically allocated in bytes.", nil, nil)
	dbInUseDesc = prometheus.NewDesc("etcd_mvcc_db_total_size_in_use_in_bytes",
		"Total size of the underlying database logically in use in bytes.", nil, nil)
	keysDesc = prometheus.NewDesc("etcd_debugging_mvcc_keys_total",
		"Total number of keys.", nil, nil)
	currentRevDesc = prometheus.NewDesc("etcd_debugging_mvcc_current_revision",
		"The current revision of store.", nil, nil)
	compactRevDesc = prometheus.NewDesc("etcd_debugging_mvcc_compact_revision",
		"The revision of the last compaction in store.", nil, nil)
	authRevDesc = prometheus.NewDesc("etcd_debugging_auth_revision",
		"The current revision of auth store.", nil, nil)
	appliedDesc = prometheus.NewDesc("etcd_server_proposals_applied_total",
		"The total number of consensus proposals applied.", nil, nil)
	quotaDesc = prometheus.NewDesc("etcd_server_quota_backend_bytes",
		"Current backend storage quota size in bytes.", nil, nil)
	alarmsDesc = prometheus.NewDesc("etcd_debugging_server_alarms",
		"Alarms for every member in cluster. 1 for 'server_id' label with current ID. 2 for 'alarm_type' label with type of this alarm",
		[]string{"server_id", "alarm_type"}, nil)
)

type collector struct {
	db     *pebble.DB
	reader *Reader
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dbSizeDesc, dbInUseDesc, keysDesc, currentRevDesc, compactRevDesc,
		authRevDesc, appliedDesc, quotaDesc, alarmsDesc} {
		ch <- d
	}
	describePebble(ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	v := c.reader.View()
	m := c.db.Metrics()
	gauge(dbSizeDesc, float64(m.DiskSpaceUsage()))
	gauge(dbInUseDesc, float64(v.LiveBytes))
	gauge(keysDesc, float64(v.Keys))
	gauge(currentRevDesc, float64(v.Rev))
	gauge(compactRevDesc, float64(v.CompactRev))
	gauge(authRevDesc, float64(c.reader.Auth().Rev))
	gauge(appliedDesc, float64(v.Applied))
	gauge(quotaDesc, float64(c.reader.QuotaBytes()))
	if v.NoSpace || v.Corrupt {
		// Unreadable alarms are left out of the scrape; the Reader counts
		// and logs the error.
		as, _ := c.reader.Alarms()
		for _, a := range as {
			gauge(alarmsDesc, 1, strconv.FormatUint(a.MemberID, 16), a.Alarm.String())
		}
	}
	collectPebble(ch, m)
}

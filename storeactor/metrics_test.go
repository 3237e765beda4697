package storeactor_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
)

func scrape(t *testing.T, reg prometheus.Gatherer) testkit.Scrape { return testkit.Gather(t, reg) }

func deltas(t *testing.T, before, after testkit.Scrape, names ...string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, n := range names {
		out[n] = after.Must(t, n) - before.Must(t, n)
	}
	return out
}

var mvccFamilies = []string{"etcd_mvcc_put_total", "etcd_mvcc_range_total", "etcd_mvcc_delete_total", "etcd_mvcc_txn_total"}

func wantDeltas(t *testing.T, what string, got map[string]float64, put, rng, del, txn float64) {
	t.Helper()
	want := map[string]float64{"etcd_mvcc_put_total": put, "etcd_mvcc_range_total": rng,
		"etcd_mvcc_delete_total": del, "etcd_mvcc_txn_total": txn}
	for n, w := range want {
		if got[n] != w {
			t.Errorf("%s: %s grew by %v, want %v (etcd's count)", what, n, got[n], w)
		}
	}
}

// The mvcc counters move as etcd's do for the same requests: one unit per
// etcd txn (a Put, a Range, a DeleteRange; a writing Txn's compares, then
// its ops; a lease revoke), counted as a txn when it has more than one
// operation.
func TestMetricsMVCCCountsAsEtcd(t *testing.T) {
	h := newHarness(t)
	reg := testkit.Registry(t)
	step := func(what string, put, rng, del, txn float64, do func()) {
		t.Helper()
		before := scrape(t, reg)
		do()
		wantDeltas(t, what, deltas(t, before, scrape(t, reg), mvccFamilies...), put, rng, del, txn)
	}
	before := scrape(t, reg)
	step("20 puts", 20, 0, 0, 0, func() {
		for i := range 20 {
			h.put(fmt.Sprintf("k%02d", i), "v")
		}
	})
	if d := scrape(t, reg).Must(t, "etcd_debugging_mvcc_total_put_size_in_bytes") - before.Must(t, "etcd_debugging_mvcc_total_put_size_in_bytes"); d != 20*4 {
		t.Errorf("total_put_size_in_bytes grew by %v, want %d (key and value of each put)", d, 20*4)
	}
	step("a range", 0, 1, 0, 0, func() {
		if _, err := h.reader.Range(&pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l")}); err != nil {
			t.Fatal(err)
		}
	})
	cmp := &pb.Compare{Key: []byte("k00"), Target: pb.Compare_VALUE, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_Value{Value: []byte("v")}}
	step("a txn: one compare, then one put", 1, 1, 0, 0, func() {
		h.must(txnReq(&pb.TxnRequest{Compare: []*pb.Compare{cmp}, Success: []*pb.RequestOp{opPut("k00", "w")}}))
	})
	cmp = &pb.Compare{Key: []byte("k01"), Target: pb.Compare_VALUE, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_Value{Value: []byte("v")}}
	step("a read-only txn: a compare and two ranges", 0, 3, 0, 1, func() {
		if _, err := h.reader.Txn(&pb.TxnRequest{Compare: []*pb.Compare{cmp}, Success: []*pb.RequestOp{opGet("k01", "", 0), opGet("k02", "", 0)}}); err != nil {
			t.Fatal(err)
		}
	})
	step("a put with prev_kv", 1, 1, 0, 1, func() {
		h.must(putOpt(&pb.PutRequest{Key: []byte("k03"), Value: []byte("x"), PrevKv: true}))
	})
	step("a delete", 0, 0, 1, 0, func() { h.must(delReq("k19", "")) })
	step("a lease revoke with two keys", 2, 0, 2, 1, func() {
		h.must(&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 7, TTL: 60}})
		h.must(putOpt(&pb.PutRequest{Key: []byte("l1"), Value: []byte("1"), Lease: 7}))
		h.must(putOpt(&pb.PutRequest{Key: []byte("l2"), Value: []byte("1"), Lease: 7}))
		h.must(&pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 7}})
	})
}

// The collector reads the store's View and pebble at scrape time: revision,
// live keys (across a restart, which counts them again), live bytes, the
// applied index, the quota, active alarms, pebble's disk usage and health.
func TestMetricsCollectorFollowsTheStore(t *testing.T) {
	h := newHarness(t)
	reg := testkit.Registry(t, storeactor.NewCollector(h.db, h.reader))
	gauge := func(name string, labels ...string) float64 { return scrape(t, reg).Must(t, name, labels...) }

	for i := range 10 {
		h.put(fmt.Sprintf("k%d", i), "v")
	}
	h.put("k0", "again")
	h.must(delReq("k9", ""))
	for name, want := range map[string]float64{
		"etcd_debugging_mvcc_keys_total":          9,
		"etcd_debugging_mvcc_current_revision":    float64(h.rev()),
		"etcd_debugging_mvcc_compact_revision":    -1,
		"etcd_server_proposals_applied_total":     float64(h.reader.View().Applied),
		"etcd_server_quota_backend_bytes":         2 << 30,
		"etcd_mvcc_db_total_size_in_use_in_bytes": float64(h.reader.View().LiveBytes),
		"etcd_debugging_auth_revision":            float64(h.reader.Auth().Rev),
	} {
		if got := gauge(name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := gauge("etcd_mvcc_db_total_size_in_bytes"); got <= 0 {
		t.Errorf("etcd_mvcc_db_total_size_in_bytes = %v", got)
	}
	s := scrape(t, reg)
	for _, name := range []string{"metastore_pebble_compaction_debt_bytes", "metastore_pebble_l0_sublevels",
		"metastore_pebble_l0_files", "metastore_pebble_read_amplification", "metastore_pebble_block_cache_hits_total",
		"metastore_pebble_block_cache_misses_total", "metastore_pebble_memtable_size_bytes", "metastore_pebble_memtables",
		"metastore_pebble_flushes_total", "metastore_pebble_compactions_total", "metastore_pebble_wal_fsync_duration_seconds",
		"metastore_pebble_write_stalls_total", "metastore_pebble_level_files"} {
		if s[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	if got := s.Must(t, "metastore_pebble_memtable_size_bytes"); got <= 0 {
		t.Errorf("metastore_pebble_memtable_size_bytes = %v", got)
	}

	h.restart() // a new Reader: the collector must read the new one
	reg = testkit.Registry(t, storeactor.NewCollector(h.db, h.reader))
	eventually(t, "keys_total counted again after a restart", func() bool { return gauge("etcd_debugging_mvcc_keys_total") == 9 })
	h.must(&pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 0xabc, Alarm: pb.AlarmType_NOSPACE}})
	if got := gauge("etcd_debugging_server_alarms", "server_id", "abc", "alarm_type", "NOSPACE"); got != 1 {
		t.Errorf("alarms{abc,NOSPACE} = %v", got)
	}
	h.setQuota(1 << 20)
	if q := gauge("etcd_server_quota_backend_bytes"); q != 1<<20 {
		t.Errorf("quota_backend_bytes after --quota-backend-bytes changed to 1MiB: %v", q)
	}
}

// The apply path: each request's apply time by type, the batch commits, and
// a physical compaction's steps, total, versions and time.
func TestMetricsApplyAndCompaction(t *testing.T) {
	h := newHarness(t)
	reg := testkit.Registry(t)
	before := scrape(t, reg)
	compactFixture(h) // 7 puts and a delete
	h.must(compactReq(8, true))
	eventually(t, "physical compaction", func() bool { return h.reader.View().CompactDone >= 8 })
	after := scrape(t, reg)
	d := func(name string, labels ...string) float64 {
		var b float64
		if before[name] != nil {
			b = before.Must(t, name, labels...)
		}
		return after.Must(t, name, labels...) - b
	}
	if got := d("etcd_server_apply_duration_seconds", "version", "v3", "op", "Put", "success", "true"); got != 7 {
		t.Errorf("apply_duration_seconds{Put} observed %v applies, want 7", got)
	}
	if got := d("etcd_server_apply_duration_seconds", "op", "DeleteRange"); got != 1 {
		t.Errorf("apply_duration_seconds{DeleteRange} observed %v", got)
	}
	if got := d("etcd_disk_backend_commit_duration_seconds"); got < 9 {
		t.Errorf("backend_commit_duration_seconds observed %v commits, want at least 9", got)
	}
	// Every entry applied went through some batch.
	batched := after.Sum("metastore_store_apply_batch_entries") - before.Sum("metastore_store_apply_batch_entries")
	if batched < 9 {
		t.Errorf("apply batches carried %v entries, want at least the 9 applied", batched)
	}
	if got := d("etcd_debugging_mvcc_db_compaction_keys_total"); got < 3 {
		t.Errorf("db_compaction_keys_total grew by %v, want the doomed versions", got)
	}
	if got := d("etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds"); got < 1 {
		t.Errorf("no compaction step timed")
	}
	if got := d("etcd_debugging_mvcc_db_compaction_total_duration_milliseconds"); got != 1 {
		t.Errorf("db_compaction_total_duration_milliseconds observed %v compactions, want 1", got)
	}
	if got := after.Must(t, "etcd_debugging_mvcc_db_compaction_last"); got <= 0 {
		t.Errorf("db_compaction_last = %v", got)
	}
}

// Hashes, snapshots and received snapshots are timed as etcd's.
func TestMetricsMaintenance(t *testing.T) {
	fs := vfs.NewMem()
	db, err := storeactor.OpenPebbleFS(fs, "/data/db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := newHarness(t, func(c *storeactor.Config) { c.DB = db })
	h.put("a", "1")
	reg := testkit.Registry(t)
	before := scrape(t, reg)
	if _, err := h.reader.HashKV(0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.reader.Hash(); err != nil {
		t.Fatal(err)
	}
	snap, err := storeactor.NewSnapshotter(db, fs, "/data/snap").Take()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	snap.Close()
	if err := storeactor.ReceiveCheckpoint(vfs.NewMem(), "/recv", &buf); err != nil {
		t.Fatal(err)
	}
	after := scrape(t, reg)
	for _, n := range []string{"etcd_mvcc_hash_rev_duration_seconds", "etcd_mvcc_hash_duration_seconds",
		"etcd_disk_backend_snapshot_duration_seconds", "etcd_snap_db_save_total_duration_seconds", "etcd_snap_db_fsync_duration_seconds"} {
		if d := after.Must(t, n) - before.Must(t, n); d != 1 {
			t.Errorf("%s observed %v, want 1", n, d)
		}
	}
}

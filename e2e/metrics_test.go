package e2e

// /metrics (issue 18), compared with the reference etcd: after the same
// workload on both, the families (name, type, label names) MetaStore
// exposes against etcd's, parsed with Prometheus' own text parser; the
// families etcd's monitoring mixin queries; values that must move
// (proposals, grpc_server_handled_total by method and code).

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// mixinFamilies are the families the alerts and dashboards of etcd's
// monitoring mixin (contrib/mixin) query. grpc_server_handling_seconds is
// exposed with --metrics=extensive only.
var mixinFamilies = []string{
	"etcd_disk_backend_commit_duration_seconds",
	"etcd_disk_wal_fsync_duration_seconds",
	"etcd_mvcc_db_total_size_in_bytes",
	"etcd_mvcc_db_total_size_in_use_in_bytes",
	"etcd_network_client_grpc_received_bytes_total",
	"etcd_network_client_grpc_sent_bytes_total",
	"etcd_network_peer_received_bytes_total",
	"etcd_network_peer_round_trip_time_seconds",
	"etcd_network_peer_sent_bytes_total",
	"etcd_network_peer_sent_failures_total",
	"etcd_server_has_leader",
	"etcd_server_leader_changes_seen_total",
	"etcd_server_proposals_applied_total",
	"etcd_server_proposals_committed_total",
	"etcd_server_proposals_failed_total",
	"etcd_server_proposals_pending",
	"etcd_server_quota_backend_bytes",
	"grpc_server_handled_total",
	"grpc_server_handling_seconds",
	"grpc_server_started_total",
	"process_resident_memory_bytes",
}

// metricSet is one scrape, by family name.
type metricSet map[string]*dto.MetricFamily

// scrapeMetrics GETs url (a /metrics URL) with curl and parses the answer with
// Prometheus' text parser.
func scrapeMetrics(t *testing.T, url string, curlArgs ...string) metricSet {
	t.Helper()
	r := curl(t, 10*time.Second, append(curlArgs, url)...)
	if r.Err != "" || r.Status != 200 {
		t.Fatalf("GET %s: status %d, %s\n%s", url, r.Status, r.Err, r.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(r.Body))
	if err != nil {
		t.Fatalf("GET %s: Prometheus' text parser: %v", url, err)
	}
	return fams
}

// famSig is what is compared of a family: its type and the names of its
// labels (over all its samples; "le" and "quantile" are not labels here).
type famSig struct {
	typ    string
	labels string
}

func (f famSig) String() string { return f.typ + "{" + f.labels + "}" }

func (m metricSet) sig(name string) (famSig, bool) {
	mf, ok := m[name]
	if !ok {
		return famSig{}, false
	}
	seen := map[string]bool{}
	for _, mt := range mf.Metric {
		for _, lp := range mt.Label {
			seen[lp.GetName()] = true
		}
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	return famSig{typ: strings.ToLower(mf.GetType().String()), labels: strings.Join(names, ",")}, true
}

func (m metricSet) names() []string {
	var out []string
	for n := range m {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// labelsOf renders a sample's labels, sorted: `a="x",b="y"`.
func labelsOf(mt *dto.Metric) string {
	var ls []string
	for _, lp := range mt.Label {
		ls = append(ls, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
	}
	slices.Sort(ls)
	return strings.Join(ls, ",")
}

// sampleValue is a counter's, gauge's or untyped sample's value, or a
// histogram's or summary's sample count.
func sampleValue(mt *dto.Metric) float64 {
	switch {
	case mt.Counter != nil:
		return mt.Counter.GetValue()
	case mt.Gauge != nil:
		return mt.Gauge.GetValue()
	case mt.Untyped != nil:
		return mt.Untyped.GetValue()
	case mt.Histogram != nil:
		return float64(mt.Histogram.GetSampleCount())
	case mt.Summary != nil:
		return float64(mt.Summary.GetSampleCount())
	}
	return math.NaN()
}

// samples maps each sample of family name (labels as labelsOf) to its value.
func (m metricSet) samples(name string) map[string]float64 {
	out := map[string]float64{}
	if mf, ok := m[name]; ok {
		for _, mt := range mf.Metric {
			out[labelsOf(mt)] = sampleValue(mt)
		}
	}
	return out
}

// value sums the samples of family name whose labels include match
// ("k=v" pairs); ok is false if there is none.
func (m metricSet) value(name string, match ...string) (float64, bool) {
	mf, ok := m[name]
	if !ok {
		return 0, false
	}
	sum, found := 0.0, false
	for _, mt := range mf.Metric {
		have := map[string]string{}
		for _, lp := range mt.Label {
			have[lp.GetName()] = lp.GetValue()
		}
		all := true
		for _, kv := range match {
			k, v, _ := strings.Cut(kv, "=")
			if have[k] != v {
				all = false
				break
			}
		}
		if all {
			sum += sampleValue(mt)
			found = true
		}
	}
	return sum, found
}

// metricDeltas are the samples of family name that changed from before to after
// (a sample new in after counts from 0).
func metricDeltas(before, after metricSet, name string) map[string]float64 {
	b, out := before.samples(name), map[string]float64{}
	for k, v := range after.samples(name) {
		if d := v - b[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// streamEnds merges the OK and Canceled codes of streams: a client that
// half-closes its stream and then cancels it (clientv3's KeepAliveOnce,
// a watcher's Close) ends it either way, by which arrives first, on etcd
// as on MetaStore.
func streamEnds(m map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if strings.Contains(k, `grpc_type="bidi_stream"`) {
			k = strings.NewReplacer(`grpc_code="OK"`, `grpc_code="<OK or Canceled>"`, `grpc_code="Canceled"`, `grpc_code="<OK or Canceled>"`).Replace(k)
		}
		out[k] += v
	}
	return out
}

func fmtSamples(m map[string]float64) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	var b strings.Builder
	for _, k := range ks {
		fmt.Fprintf(&b, "  {%s} %s\n", k, strconv.FormatFloat(m[k], 'g', -1, 64))
	}
	return b.String()
}

// undocumentedRE finds the heading of docs/operations.md's section that
// lists etcd's families MetaStore does not expose.
var (
	undocHeadingRE = regexp.MustCompile(`(?i)^(#+)\s.*\bnot\s+(exposed|exported|implemented|provided)\b`)
	headingRE      = regexp.MustCompile(`^(#+)\s`)
	backtickNameRE = regexp.MustCompile("`([a-zA-Z_:][a-zA-Z0-9_:]*)`")
)

// documentedMissing returns the family names in backticks in the section
// of docs/operations.md that lists etcd 3.7's families MetaStore does not
// expose (a heading saying "not exposed"), and where they were read from.
func documentedMissing(t *testing.T) (map[string]bool, string) {
	t.Helper()
	path := filepath.Join(RepoRoot(), "docs", "operations.md")
	data, err := os.ReadFile(path)
	if err != nil {
		return map[string]bool{}, fmt.Sprintf("%s: %v", path, err)
	}
	out := map[string]bool{}
	level := 0
	for _, line := range strings.Split(string(data), "\n") {
		if m := headingRE.FindStringSubmatch(line); m != nil {
			if level > 0 && len(m[1]) <= level {
				break
			}
			if level == 0 && undocHeadingRE.MatchString(line) {
				level = len(m[1])
			}
			continue
		}
		if level > 0 {
			for _, m := range backtickNameRE.FindAllStringSubmatch(line, -1) {
				out[m[1]] = true
			}
		}
	}
	if level == 0 {
		return out, fmt.Sprintf("%s: no section whose heading says the families are \"not exposed\"", path)
	}
	return out, fmt.Sprintf("%s (%d names)", path, len(out))
}

// compareFamilies checks MetaStore's families against etcd's (both scraped
// at the same point of the same scenario): every family etcd exposes must
// be exposed by MetaStore with the same type and label names, unless
// docs/operations.md lists it as not exposed (the mixin's families may not
// be listed: they must be there). MetaStore's own extra families are only
// logged.
func compareFamilies(t *testing.T, what string, ms, ref metricSet) {
	t.Helper()
	documented, from := documentedMissing(t)
	mixin := map[string]bool{}
	for _, n := range mixinFamilies {
		mixin[n] = true
	}
	var missing, excused, extra, bad []string
	for _, n := range ref.names() {
		rs, _ := ref.sig(n)
		ms, ok := ms.sig(n)
		switch {
		case !ok && documented[n] && !mixin[n]:
			excused = append(excused, n)
		case !ok:
			why := ""
			if mixin[n] {
				why = " (queried by etcd's monitoring mixin)"
			}
			missing = append(missing, fmt.Sprintf("%s %s%s", n, rs, why))
		case ms != rs:
			bad = append(bad, fmt.Sprintf("%s: etcd %s, metastore %s", n, rs, ms))
		}
	}
	for _, n := range ms.names() {
		if _, ok := ref[n]; !ok {
			s, _ := ms.sig(n)
			extra = append(extra, fmt.Sprintf("%s %s", n, s))
		}
	}
	if len(missing) > 0 {
		t.Errorf("%s: %d of etcd's families missing in MetaStore and not listed as not exposed in %s:\n  %s",
			what, len(missing), from, strings.Join(missing, "\n  "))
	}
	if len(bad) > 0 {
		t.Errorf("%s: families whose type or label names differ:\n  %s", what, strings.Join(bad, "\n  "))
	}
	if len(excused) > 0 {
		t.Logf("%s: etcd families documented as not exposed: %s", what, strings.Join(excused, " "))
	}
	if len(extra) > 0 {
		t.Logf("%s: MetaStore-only families: %s", what, strings.Join(extra, " "))
	}
	var absentBoth []string
	for _, n := range mixinFamilies {
		if _, ok := ref[n]; !ok {
			if _, ok := ms[n]; !ok {
				absentBoth = append(absentBoth, n)
			}
		}
	}
	if len(absentBoth) > 0 {
		t.Logf("%s: mixin families neither server exposes yet at this point: %s", what, strings.Join(absentBoth, " "))
	}
}

// metricsRun is what one server kind's TestMetrics scenario observed.
type metricsRun struct {
	before, after, metricsPort, basic metricSet
	puts                              int
}

// TestMetrics: a member with --metrics=extensive and one with the default
// (basic), each with --listen-metrics-urls, on MetaStore and on etcd; the
// same workload (puts, a range, a put of an empty key, a txn, a watch, a
// lease granted, kept alive and revoked) on both. Then: MetaStore exposes
// etcd's families (type and label names) on the client port and the same
// on the metrics port; grpc_server_handling_seconds with extensive only;
// proposals_committed_total and proposals_applied_total grew by at least
// the puts; grpc_server_handled_total counted the Range as OK and the bad
// Put as InvalidArgument, and moved for the same (service, method, code,
// type) on both servers, as did grpc_server_started_total and the message
// counters.
func TestMetrics(t *testing.T) {
	curlPath(t)
	kinds := httpKinds()
	runs := make([]*metricsRun, len(kinds))
	t.Run("run", func(t *testing.T) {
		for i, kind := range kinds {
			t.Run(string(kind), func(t *testing.T) {
				t.Parallel()
				runs[i] = metricsWorkload(t, kind)
			})
		}
	})
	if len(kinds) != 2 || runs[0] == nil || runs[1] == nil {
		return
	}
	ms, ref := runs[0], runs[1]
	compareFamilies(t, "--metrics=extensive, client port", ms.after, ref.after)
	compareFamilies(t, "--metrics=basic, client port", ms.basic, ref.basic)
	// The same counters moved by the same amounts.
	for _, fam := range []string{
		"grpc_server_handled_total", "grpc_server_started_total",
		"grpc_server_msg_received_total", "grpc_server_msg_sent_total",
		"grpc_server_handling_seconds",
		"etcd_mvcc_put_total", "etcd_mvcc_delete_total", "etcd_mvcc_txn_total", "etcd_mvcc_range_total",
		"etcd_debugging_lease_granted_total", "etcd_debugging_lease_revoked_total", "etcd_debugging_lease_renewed_total",
	} {
		md, rd := streamEnds(metricDeltas(ms.before, ms.after, fam)), streamEnds(metricDeltas(ref.before, ref.after, fam))
		if fmtSamples(md) != fmtSamples(rd) {
			t.Errorf("%s moved differently during the workload:\n etcd:\n%s metastore:\n%s", fam, fmtSamples(rd), fmtSamples(md))
		}
	}
	// Gauges that must read the same.
	for _, fam := range []string{
		"etcd_server_has_leader", "etcd_server_is_leader", "etcd_server_is_learner",
		"etcd_server_quota_backend_bytes", "etcd_server_version", "etcd_cluster_version",
	} {
		m, r := fmtSamples(ms.after.samples(fam)), fmtSamples(ref.after.samples(fam))
		if m != r {
			t.Errorf("%s differs:\n etcd:\n%s metastore:\n%s", fam, r, m)
		}
	}
}

func metricsWorkload(t *testing.T, kind Kind) *metricsRun {
	mport, bport := FreePort(t), FreePort(t)
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)
	s := startKind(t, kind, WithFlags("--metrics=extensive", fmt.Sprintf("--listen-metrics-urls=http://127.0.0.1:%d", mport)))
	b := startKind(t, kind, WithFlags(fmt.Sprintf("--listen-metrics-urls=http://127.0.0.1:%d", bport)))
	run := &metricsRun{puts: 20}
	cli := s.Client(t)
	ctx := ctxFor(t)
	run.before = scrapeMetrics(t, s.ClientURL()+"/metrics")

	for i := range run.puts {
		if _, err := cli.Put(ctx, fmt.Sprintf("k%02d", i), "v"); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
	if _, err := cli.Get(ctx, "k", clientv3.WithPrefix()); err != nil {
		t.Fatalf("range: %v", err)
	}
	if _, err := cli.Put(ctx, "", "v"); err == nil {
		t.Fatalf("put of an empty key succeeded")
	}
	if _, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Value("k00"), "=", "v")).Then(clientv3.OpPut("k00", "w")).Commit(); err != nil {
		t.Fatalf("txn: %v", err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	wch := cli.Watch(wctx, "w")
	if _, err := cli.Put(ctx, "w", "1"); err != nil {
		t.Fatal(err)
	}
	select {
	case wr := <-wch:
		if err := wr.Err(); err != nil || len(wr.Events) != 1 {
			t.Fatalf("watch: %v %v", wr.Events, err)
		}
	case <-time.After(httpWait):
		t.Fatal("no watch event")
	}
	wcancel()
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatalf("lease grant: %v", err)
	}
	if _, err := cli.KeepAliveOnce(ctx, lease.ID); err != nil {
		t.Fatalf("keepalive: %v", err)
	}
	if _, err := cli.Revoke(ctx, lease.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if _, err := cli.Delete(ctx, "k19"); err != nil {
		t.Fatalf("delete: %v", err)
	}

	// The Watch and LeaseKeepAlive streams end (and are counted) a moment
	// after their client side has gone.
	pollFor(5*time.Second, func() bool {
		run.after = scrapeMetrics(t, s.ClientURL()+"/metrics")
		done := metricDeltas(run.before, run.after, "grpc_server_handled_total")
		var watch, keepAlive bool
		for k := range done {
			watch = watch || strings.Contains(k, `grpc_method="Watch"`)
			keepAlive = keepAlive || strings.Contains(k, `grpc_method="LeaseKeepAlive"`)
		}
		return watch && keepAlive
	})
	run.metricsPort = scrapeMetrics(t, metricsURL)
	if _, err := b.Client(t).Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	run.basic = scrapeMetrics(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", bport))

	// Checks that hold on each server.
	grew := func(fam string, least float64) {
		d0, _ := run.before.value(fam)
		d1, ok := run.after.value(fam)
		if !ok || d1-d0 < least {
			t.Errorf("%s: %v -> %v (present %v), want it to grow by at least %v", fam, d0, d1, ok, least)
		}
	}
	grew("etcd_server_proposals_committed_total", float64(run.puts))
	grew("etcd_server_proposals_applied_total", float64(run.puts))
	handled := metricDeltas(run.before, run.after, "grpc_server_handled_total")
	for _, want := range []string{
		`grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"`,
		`grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"`,
		`grpc_code="InvalidArgument",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"`,
		`grpc_code="OK",grpc_method="LeaseGrant",grpc_service="etcdserverpb.Lease",grpc_type="unary"`,
	} {
		if handled[want] < 1 {
			t.Errorf("grpc_server_handled_total{%s} did not grow; it moved:\n%s", want, fmtSamples(handled))
		}
	}
	if d := handled[`grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"`]; d != float64(run.puts+1) {
		t.Errorf("grpc_server_handled_total for the OK puts grew by %v, want %d", d, run.puts+1)
	}
	if _, ok := run.after["grpc_server_handling_seconds"]; !ok {
		t.Errorf("--metrics=extensive: no grpc_server_handling_seconds")
	}
	if _, ok := run.basic["grpc_server_handling_seconds"]; ok {
		t.Errorf("--metrics=basic: grpc_server_handling_seconds is exposed")
	}
	if v, ok := run.after.value("etcd_server_has_leader"); v != 1 || !ok {
		t.Errorf("etcd_server_has_leader = %v (present %v), want 1", v, ok)
	}
	// The metrics port serves the same families as the client port.
	if a, b := strings.Join(run.after.names(), " "), strings.Join(run.metricsPort.names(), " "); a != b {
		t.Errorf("families on the client port and on the metrics port differ:\n client:  %s\n metrics: %s", a, b)
	}
	var buf bytes.Buffer
	for _, n := range run.after.names() {
		sg, _ := run.after.sig(n)
		fmt.Fprintf(&buf, "  %s %s\n", n, sg)
	}
	if testing.Verbose() {
		t.Logf("%s families (--metrics=extensive):\n%s", kind, buf.String())
	}
	return run
}

package e2e

// The HTTP side of etcd (issue 18), compared with the reference etcd over
// real curl: /health, /livez, /readyz on the client port and on the
// --listen-metrics-urls port, /version on the client and peer ports, the
// JSON gateway (/v3/...), https with client certificates, the
// grpc.health.v1.Health service, and the etcdctl commands that read
// /metrics. Every scenario runs on a fresh MetaStore and a fresh etcd at
// once with identical flags (bothKinds); the transcripts of what each
// answered (status, headers but Date and Content-Length, normalised body)
// must be the same.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// healthPaths are the health requests asked on a healthy member.
var healthPaths = []string{
	"/health",
	"/health?exclude=NOSPACE",
	"/health?serializable=true",
	"/health?serializable=false",
	"/health?exclude=NOSPACE&serializable=true", // kubeadm's liveness probe
	"/livez",
	"/readyz",
	"/livez?verbose",
	"/readyz?verbose",
	"/readyz?verbose=false",
	"/readyz?exclude=data_corruption&verbose",
	"/readyz?exclude=data_corruption&exclude=linearizable_read&verbose",
	"/readyz?exclude=no_such_check&verbose",
	"/livez?exclude=serializable_read&verbose",
	"/livez/serializable_read",
	"/livez/serializable_read?verbose",
	"/readyz/serializable_read",
	"/readyz/linearizable_read",
	"/readyz/data_corruption",
	"/readyz/non_learner",
	"/readyz/no_such_check",
	"/livez/no_such_check",
	"/livez/linearizable_read",
	"/readyz/",
	"/health/",
}

// unhealthyPaths are asked while an alarm is raised, on a learner, and
// without a leader.
var unhealthyPaths = []string{
	"/health",
	"/health?exclude=NOSPACE",
	"/health?exclude=CORRUPT",
	"/health?exclude=NOSPACE&exclude=CORRUPT",
	"/health?serializable=true",
	"/health?exclude=NOSPACE&serializable=true",
	"/livez?verbose",
	"/readyz",
	"/readyz?verbose",
	"/readyz?exclude=data_corruption&verbose",
	"/readyz?exclude=non_learner",
	"/readyz/data_corruption",
	"/readyz/non_learner",
}

func (sd *hside) get(name, url string, extra ...string) curlResult {
	r := curl(sd.t, 10*time.Second, append(extra, url)...)
	sd.record(name, r)
	return r
}

// migrated waits (up to 5 s, without failing) until url, a /version URL,
// reports storage version 3.7.0: a new member (etcd) reports the version
// its store had until it has migrated it to the cluster's, a moment after
// it starts serving.
func migrated(t *testing.T, url string, curlArgs ...string) {
	pollFor(5*time.Second, func() bool {
		return strings.Contains(curl(t, 10*time.Second, append(curlArgs, url)...).Body, `"storage":"3.7.0"`)
	})
}

// healthGets records every path of paths on base ("http://127.0.0.1:port").
func (sd *hside) healthGets(label, base string, paths []string) {
	for _, p := range paths {
		sd.get(label+" GET "+p, base+p)
	}
}

// setAlarm raises or clears an alarm on s through gRPC.
func setAlarm(t *testing.T, cli *clientv3.Client, action pb.AlarmRequest_AlarmAction, member uint64, typ pb.AlarmType) {
	t.Helper()
	_, err := pb.NewMaintenanceClient(cli.ActiveConnection()).Alarm(ctxFor(t), &pb.AlarmRequest{Action: action, MemberID: member, Alarm: typ})
	if err != nil {
		t.Fatalf("alarm %v %v: %v", action, typ, err)
	}
}

func selfMemberID(t *testing.T, s *Server, cli *clientv3.Client) uint64 {
	t.Helper()
	st, err := cli.Status(ctxFor(t), s.Endpoint())
	if err != nil {
		t.Fatalf("status of %s: %v", s.Name, err)
	}
	return st.Header.MemberId
}

// grpcHealth renders a Health.Check answer.
func grpcHealth(cli *clientv3.Client, service string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cli.ActiveConnection()).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		st := status.Convert(err)
		return fmt.Sprintf("error %v %q", st.Code(), st.Message())
	}
	return resp.Status.String()
}

// TestHTTPHealth: on a single member with --listen-metrics-urls, the
// health endpoints (every check, ?verbose, ?exclude, ?serializable,
// unknown checks, kubeadm's probe URLs, other methods) on the client port
// and on the metrics port; /version on the client and peer ports and what
// the metrics port does not serve; then with NOSPACE raised, with CORRUPT
// raised, and on a learner member (non_learner); and grpc.health.v1.Health
// Check and Watch.
func TestHTTPHealth(t *testing.T) {
	bothKinds(t, func(t *testing.T, sd *hside) {
		mport := FreePort(t)
		metrics := "http://127.0.0.1:" + strconv.Itoa(mport)
		s := startKind(t, sd.kind, WithFlags("--listen-metrics-urls="+metrics))
		sd.port(s.ClientPort, "client")
		sd.port(s.PeerPort, "peer")
		sd.port(mport, "metrics")
		client := s.ClientURL()

		sd.healthGets("client", client, healthPaths)
		sd.healthGets("metrics", metrics, healthPaths)
		for _, m := range []string{"POST", "PUT", "HEAD"} {
			for _, p := range []string{"/health", "/livez", "/readyz/non_learner"} {
				args := []string{"-X", m}
				if m == "HEAD" {
					args = []string{"--head", "-o", "/dev/null"}
				}
				sd.get("client "+m+" "+p, client+p, args...)
			}
		}
		// CORS preflight.
		sd.get("client OPTIONS /health", client+"/health", "-X", "OPTIONS", "-H", "Origin: http://example.com")

		// /version on the client and peer ports, not on the metrics port.
		migrated(t, client+"/version")
		sd.get("client GET /version", client+"/version")
		sd.get("peer GET /version", s.PeerURL()+"/version")
		sd.get("metrics GET /version", metrics+"/version")
		sd.get("metrics POST /v3/kv/range", metrics+"/v3/kv/range", "-X", "POST", "-d", "{}")
		sd.get("metrics GET /debug/pprof/", metrics+"/debug/pprof/")
		sd.get("client GET /debug/pprof/ (pprof off)", client+"/debug/pprof/")
		sd.get("metrics GET /", metrics+"/")
		r := curl(t, 10*time.Second, metrics+"/metrics")
		sd.note("metrics GET /metrics: status and type", "%d %s", r.Status, r.Header.Get("Content-Type"))
		r = curl(t, 10*time.Second, client+"/metrics")
		sd.note("client GET /metrics: status and type", "%d %s", r.Status, r.Header.Get("Content-Type"))

		// gRPC health on a healthy member.
		cli := s.Client(t)
		sd.note("grpc Health.Check \"\"", "%s", grpcHealth(cli, ""))
		sd.note("grpc Health.Check \"etcdserverpb.KV\"", "%s", grpcHealth(cli, "etcdserverpb.KV"))
		sd.note("grpc Health.Check \"no.such.Service\"", "%s", grpcHealth(cli, "no.such.Service"))
		for _, svc := range []string{"", "no.such.Service"} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			w, err := healthpb.NewHealthClient(cli.ActiveConnection()).Watch(ctx, &healthpb.HealthCheckRequest{Service: svc})
			var got string
			if err == nil {
				var resp *healthpb.HealthCheckResponse
				if resp, err = w.Recv(); err == nil {
					got = resp.Status.String()
				}
			}
			if err != nil {
				got = "error " + status.Convert(err).Code().String()
			}
			cancel()
			sd.note(fmt.Sprintf("grpc Health.Watch %q: first message", svc), "%s", got)
		}

		// NOSPACE.
		self := selfMemberID(t, s, cli)
		setAlarm(t, cli, pb.AlarmRequest_ACTIVATE, self, pb.AlarmType_NOSPACE)
		pollCurl(t, "/health to see NOSPACE", statusIs(503), client+"/health")
		sd.healthGets("NOSPACE: client", client, unhealthyPaths)
		sd.get("NOSPACE: kubeadm liveness GET /health?exclude=NOSPACE&serializable=true", metrics+"/health?exclude=NOSPACE&serializable=true")
		sd.get("NOSPACE: kubeadm startup GET /health?serializable=false", metrics+"/health?serializable=false")
		sd.note("NOSPACE: grpc Health.Check", "%s", grpcHealth(cli, ""))
		setAlarm(t, cli, pb.AlarmRequest_DEACTIVATE, self, pb.AlarmType_NOSPACE)
		pollCurl(t, "/health to see NOSPACE cleared", statusIs(200), client+"/health")
		sd.get("NOSPACE cleared: client GET /health", client+"/health")

		// CORRUPT.
		setAlarm(t, cli, pb.AlarmRequest_ACTIVATE, self, pb.AlarmType_CORRUPT)
		pollCurl(t, "/health to see CORRUPT", statusIs(503), client+"/health")
		sd.healthGets("CORRUPT: client", client, unhealthyPaths)
		sd.healthGets("CORRUPT: metrics", metrics, []string{"/health", "/readyz?verbose", "/livez"})
		setAlarm(t, cli, pb.AlarmRequest_DEACTIVATE, self, pb.AlarmType_CORRUPT)
		pollCurl(t, "/health to see CORRUPT cleared", statusIs(200), client+"/health")

		// Both alarms: /health names the first.
		setAlarm(t, cli, pb.AlarmRequest_ACTIVATE, self, pb.AlarmType_NOSPACE)
		setAlarm(t, cli, pb.AlarmRequest_ACTIVATE, self, pb.AlarmType_CORRUPT)
		// etcd keeps alarms in a map: with both raised, /health names
		// either.
		r = curl(t, 10*time.Second, client+"/health")
		r.Body = strings.NewReplacer(`"ALARM NOSPACE"`, `"ALARM <NOSPACE or CORRUPT>"`, `"ALARM CORRUPT"`, `"ALARM <NOSPACE or CORRUPT>"`).Replace(r.Body)
		sd.record("NOSPACE+CORRUPT: client GET /health (either alarm named)", r)
		sd.healthGets("NOSPACE+CORRUPT: client", client, []string{"/health?exclude=NOSPACE", "/health?exclude=CORRUPT", "/health?exclude=NOSPACE&exclude=CORRUPT"})
		sd.note("CORRUPT: grpc Health.Check", "%s", expectGRPCHealthCorrupt(sd.kind, cli))
		setAlarm(t, cli, pb.AlarmRequest_DEACTIVATE, self, pb.AlarmType_CORRUPT)
		setAlarm(t, cli, pb.AlarmRequest_DEACTIVATE, self, pb.AlarmType_NOSPACE)
		pollCurl(t, "/health to see the alarms cleared", statusIs(200), client+"/health")

		// A learner.
		l := NewMember(t, sd.kind, fmt.Sprintf("%s-learner", sd.kind))
		if _, err := cli.MemberAddAsLearner(ctxFor(t), []string{l.PeerURL()}); err != nil {
			t.Fatalf("member add --learner: %v", err)
		}
		l.Join(t, []*Server{s})
		sd.port(l.ClientPort, "learner-client")
		sd.port(l.PeerPort, "learner-peer")
		lclient := l.ClientURL()
		// The learner serves once it has caught up with the leader.
		pollCurl(t, "the learner's /livez", statusIs(200), lclient+"/livez")
		sd.healthGets("learner", lclient, unhealthyPaths)
		// A new member reports its storage version once it has migrated
		// its store to the cluster's version.
		migrated(t, lclient+"/version")
		sd.get("learner GET /version", lclient+"/version")
		sd.get("voter GET /readyz/non_learner", client+"/readyz/non_learner")
	})
}

// expectGRPCHealth checks grpc.health.v1's Check for "" where a deliberate
// difference lies: etcd 3.7 says SERVING whether or not there is a leader
// (it changes only around a defragmentation behind a feature gate);
// MetaStore says NOT_SERVING without a leader, so gRPC probes and proxies
// move traffic away (issue 18). It waits up to 5 s for the expected
// status (MetaStore updates it every heartbeat) and reports "as
// expected" or what it got.
func expectGRPCHealth(kind Kind, cli *clientv3.Client, leader bool) string {
	want := "SERVING"
	if kind != KindEtcd && !leader {
		want = "NOT_SERVING"
	}
	var got string
	if pollFor(5*time.Second, func() bool { got = grpcHealth(cli, ""); return got == want }) {
		return "as expected"
	}
	return fmt.Sprintf("%s, want %s", got, want)
}

// expectGRPCHealthCorrupt: with a CORRUPT alarm raised, etcd says SERVING,
// MetaStore NOT_SERVING (the member refuses every write and linearizable
// read is no longer trustworthy; issue 18).
func expectGRPCHealthCorrupt(kind Kind, cli *clientv3.Client) string {
	want := "NOT_SERVING"
	if kind == KindEtcd {
		want = "SERVING"
	}
	var got string
	if pollFor(5*time.Second, func() bool { got = grpcHealth(cli, ""); return got == want }) {
		return "as expected"
	}
	return fmt.Sprintf("%s, want %s", got, want)
}

// noLeaderReason hides the one reason a check gives differently without a
// leader: etcd's linearizable read waits out its request timeout
// ("etcdserver: request timed out", ~7 s), MetaStore's fails at once with
// "etcdserver: no leader" (docs/operations.md).
func noLeaderReason(r curlResult) curlResult {
	for _, reason := range []string{"etcdserver: request timed out", "etcdserver: no leader"} {
		r.Body = strings.ReplaceAll(r.Body, "[-]linearizable_read failed: "+reason, "[-]linearizable_read failed: <no leader>")
	}
	return r
}

// healthWatch follows a grpc.health.v1.Health Watch stream for "".
type healthWatch struct {
	mu   sync.Mutex
	last string // the last status received, or the stream's error
}

func watchHealth(t *testing.T, cli *clientv3.Client) *healthWatch {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	hw := &healthWatch{}
	w, err := healthpb.NewHealthClient(cli.ActiveConnection()).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		hw.last = "error " + status.Convert(err).Code().String()
		return hw
	}
	go func() {
		for {
			resp, err := w.Recv()
			hw.mu.Lock()
			if err != nil {
				hw.last = "error " + status.Convert(err).Code().String()
				hw.mu.Unlock()
				return
			}
			hw.last = resp.Status.String()
			hw.mu.Unlock()
		}
	}()
	return hw
}

// agrees reports whether the stream's last status is (or within 5 s
// becomes) want; if not, what it is.
func (hw *healthWatch) agrees(want string) string {
	var last string
	ok := pollFor(5*time.Second, func() bool {
		hw.mu.Lock()
		defer hw.mu.Unlock()
		last = hw.last
		return last == want
	})
	if ok {
		return "true"
	}
	return fmt.Sprintf("false: Check says %s, the Watch stream last said %q", want, last)
}

// leaderOf1 is the leader member 1's Status names (0: none; 1 if it does
// not answer).
func leaderOf1(cli *clientv3.Client, m *Server) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := cli.Status(ctx, m.Endpoint())
	if err != nil {
		return 1
	}
	return st.Leader
}

// TestHTTPQuorumLoss: a 3-member cluster; on member 1, /health, /livez,
// /readyz, grpc.health.v1.Health and etcd_server_has_leader while all are
// up, once the two others are stopped (no leader: 503 and etcd's reasons),
// and once they are back. The families of etcd's monitoring mixin about
// peers are checked here, where there are peers.
func TestHTTPQuorumLoss(t *testing.T) {
	sides := bothKinds(t, func(t *testing.T, sd *hside) {
		servers := StartCluster(t, sd.kind, 3)
		for i, s := range servers {
			sd.port(s.ClientPort, fmt.Sprintf("client%d", i+1))
			sd.port(s.PeerPort, fmt.Sprintf("peer%d", i+1))
		}
		m := servers[0]
		client := m.ClientURL()
		cli := m.Client(t)
		hasLeader := func() string {
			v, ok := scrapeMetrics(t, client+"/metrics").value("etcd_server_has_leader")
			if !ok {
				return "absent"
			}
			return strconv.FormatFloat(v, 'g', -1, 64)
		}
		pollCurl(t, "member 1 to have a leader", statusIs(200), client+"/health")
		sd.healthGets("3 up: member 1", client, []string{"/health", "/readyz?verbose", "/livez?verbose"})
		sd.note("3 up: grpc Health.Check", "%s", expectGRPCHealth(sd.kind, cli, true))
		sd.note("3 up: etcd_server_has_leader", "%s", hasLeader())
		// A Health.Watch stream must agree with Check whenever asked
		// (etcd's never changes: it stays SERVING without a leader).
		hw := watchHealth(t, cli)
		sd.note("3 up: grpc Health.Watch agrees with Check", "%s", hw.agrees(grpcHealth(cli, "")))
		// Let every member hear from every other before looking at the
		// peer families.
		pollCurl(t, "member 3 to have a leader", statusIs(200), servers[2].ClientURL()+"/health")
		sd.scrapes["3 up"] = scrapeMetrics(t, client+"/metrics")
		changes0, _ := sd.scrapes["3 up"].value("etcd_server_leader_changes_seen_total")

		// Killed rather than stopped: a leader's graceful stop hands its
		// leadership over first, which only takes time here.
		servers[1].Kill()
		servers[2].Kill()
		// Polled on Status (which answers locally): a /health asked while
		// member 1 still believes in a leader waits for its linearizable
		// read to time out.
		pollUntil(t, "member 1 to see no leader in its Status", func() bool { return leaderOf1(cli, m) == 0 })
		// etcd sets the gauge before the leader Status reports.
		pollFor(5*time.Second, func() bool { return hasLeader() == "0" })
		sd.healthGets("1 of 3 up: member 1", client, []string{
			"/health", "/health?exclude=NOSPACE", "/health?serializable=true", "/health?serializable=false",
			"/health?exclude=NOSPACE&serializable=true", "/livez", "/livez?verbose", "/readyz/serializable_read",
			"/readyz/data_corruption", "/readyz/non_learner", "/readyz?exclude=linearizable_read&verbose",
		})
		// The linearizable read fails once the server's request timeout
		// (etcd: 5s + 2 election timeouts) has passed.
		sd.record("1 of 3 up: member 1 GET /readyz?verbose", noLeaderReason(curl(t, 30*time.Second, client+"/readyz?verbose")))
		sd.note("1 of 3 up: grpc Health.Check", "%s", expectGRPCHealth(sd.kind, cli, false))
		sd.note("1 of 3 up: grpc Health.Watch agrees with Check", "%s", hw.agrees(grpcHealth(cli, "")))
		sd.note("1 of 3 up: etcd_server_has_leader", "%s", hasLeader())
		sd.scrapes["1 of 3 up"] = scrapeMetrics(t, client+"/metrics")

		servers[1].Restart(t)
		servers[2].Restart(t)
		pollCurl(t, "member 1 to have a leader again", statusIs(200), client+"/health")
		pollFor(5*time.Second, func() bool { return hasLeader() == "1" })
		sd.healthGets("3 up again: member 1", client, []string{"/health", "/readyz?verbose"})
		sd.note("3 up again: grpc Health.Check", "%s", expectGRPCHealth(sd.kind, cli, true))
		sd.note("3 up again: grpc Health.Watch agrees with Check", "%s", hw.agrees(grpcHealth(cli, "")))
		sd.note("3 up again: etcd_server_has_leader", "%s", hasLeader())
		changes1, _ := scrapeMetrics(t, client+"/metrics").value("etcd_server_leader_changes_seen_total")
		sd.note("3 up again: etcd_server_leader_changes_seen_total grew", "%v", changes1 > changes0)
	})
	if len(sides) == 2 {
		for _, when := range []string{"3 up", "1 of 3 up"} {
			if sides[0].scrapes[when] != nil && sides[1].scrapes[when] != nil {
				compareFamilies(t, "3-member cluster, "+when, sides[0].scrapes[when], sides[1].scrapes[when])
			}
		}
	}
}

// post records a POST of body (JSON) to path on base.
func (sd *hside) post(name, base, path, body string, extra ...string) curlResult {
	args := append([]string{"-X", "POST", "-d", body}, extra...)
	// The request, as shown: ids, keys and ports normalised like answers.
	shown := body
	if n, err := sd.normJSON(body); err == nil {
		shown = n
	}
	r := curl(sd.t, 20*time.Second, append(args, base+path)...)
	sd.record(name+": POST "+path+" "+shown, r)
	return r
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// jsonField digs a string or number out of a JSON answer: path is the keys
// down to it.
func jsonField(t *testing.T, body string, path ...string) string {
	t.Helper()
	v, err := parseJSON(body)
	if err != nil {
		t.Fatalf("not JSON: %q: %v", body, err)
	}
	for _, k := range path {
		o, ok := v.(jobj)
		if !ok {
			t.Fatalf("no %v in %s", path, body)
		}
		if v, ok = o.get(k); !ok {
			t.Fatalf("no %v in %s", path, body)
		}
	}
	s, ok := scalarString(v)
	if !ok {
		t.Fatalf("%v in %s is not a scalar", path, body)
	}
	return s
}

// snapshotFraming checks a /v3/maintenance/snapshot answer, one JSON
// object a line, and describes its framing independently of the size of
// the store: the key sets of the lines (runs of equal ones as "+"), the
// storage versions, and whether the blobs end in the SHA-256 of what
// precedes it (as etcd's do).
func snapshotFraming(body string) string {
	var runs []string
	var all []byte
	versions := map[string]bool{}
	for _, line := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
		var m map[string]map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			return fmt.Sprintf("line not JSON: %.200q: %v", line, err)
		}
		res, ok := m["result"]
		if !ok || len(m) != 1 {
			return fmt.Sprintf("line not {\"result\":...}: %.200q", line)
		}
		var keys []string
		for k := range res {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		ks := "{" + strings.Join(keys, ",") + "}"
		if n := len(runs); n > 0 && strings.TrimSuffix(runs[n-1], "+") == ks {
			runs[n-1] = ks + "+"
		} else {
			runs = append(runs, ks)
		}
		if v, ok := res["version"].(string); ok {
			versions[v] = true
		}
		blob, _ := res["blob"].(string)
		raw, err := base64.StdEncoding.DecodeString(blob)
		if err != nil {
			return fmt.Sprintf("blob not base64: %v", err)
		}
		all = append(all, raw...)
	}
	shaOK := false
	if len(all) > sha256.Size {
		sum := sha256.Sum256(all[:len(all)-sha256.Size])
		shaOK = bytes.Equal(sum[:], all[len(all)-sha256.Size:])
	}
	var vs []string
	for v := range versions {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	// Runs are "+" whenever the store is big enough to need several
	// chunks; a run of one is shown as such.
	for i, r := range runs {
		runs[i] = strings.TrimSuffix(r, "+")
	}
	return fmt.Sprintf("lines: %s\nversions: %v\nends in the SHA-256 of the rest: %v", strings.Join(runs, " "), vs, shaOK)
}

// TestHTTPGateway: the JSON gateway over curl, service by service — KV
// (put, range, txn, deleterange, compaction), Watch as a streaming
// response, Lease (grant, keepalive as a stream, timetolive, leases,
// revoke, and the old /v3/kv/lease/ paths), Cluster (member list, add and
// remove a learner), Maintenance (status, alarm, hash, hashkv, defragment,
// snapshot as a stream), Lock, Election, and Auth (enable, authenticate,
// requests with and without the Authorization header); and the errors:
// bad JSON, an empty key, a GET on a POST path, unknown paths.
func TestHTTPGateway(t *testing.T) {
	bothKinds(t, func(t *testing.T, sd *hside) {
		s := startKind(t, sd.kind)
		sd.port(s.ClientPort, "client")
		sd.port(s.PeerPort, "peer")
		sd.name(s.Name, "name")
		c := s.ClientURL()
		foo, bar := b64("foo"), b64("bar")

		// KV.
		sd.post("put", c, "/v3/kv/put", `{"key":"`+foo+`","value":"`+bar+`"}`)
		sd.post("put prev_kv", c, "/v3/kv/put", `{"key":"`+foo+`","value":"`+b64("baz")+`","prev_kv":true}`)
		sd.post("put other", c, "/v3/kv/put", `{"key":"`+b64("fop")+`","value":"`+bar+`"}`)
		sd.post("range", c, "/v3/kv/range", `{"key":"`+foo+`"}`)
		sd.post("range prefix sorted", c, "/v3/kv/range", `{"key":"`+b64("fo")+`","range_end":"`+b64("fp")+`","sort_order":"DESCEND","sort_target":"KEY"}`)
		sd.post("range all keys_only limit", c, "/v3/kv/range", `{"key":"AA==","range_end":"AA==","keys_only":true,"limit":1}`)
		sd.post("range count_only", c, "/v3/kv/range", `{"key":"AA==","range_end":"AA==","count_only":true}`)
		sd.post("range serializable old revision", c, "/v3/kv/range", `{"key":"`+foo+`","revision":2,"serializable":true}`)
		sd.post("range missing key", c, "/v3/kv/range", `{"key":"`+b64("nope")+`"}`)
		sd.post("range future revision", c, "/v3/kv/range", `{"key":"`+foo+`","revision":100}`)
		sd.post("txn success", c, "/v3/kv/txn", `{"compare":[{"key":"`+foo+`","result":"EQUAL","target":"VALUE","value":"`+b64("baz")+`"}],"success":[{"request_put":{"key":"`+foo+`","value":"`+b64("qux")+`"}},{"request_range":{"key":"`+foo+`"}}],"failure":[{"request_range":{"key":"`+foo+`"}}]}`)
		sd.post("txn failure", c, "/v3/kv/txn", `{"compare":[{"key":"`+foo+`","result":"LESS","target":"VERSION","version":"1"}],"success":[{"request_delete_range":{"key":"`+foo+`"}}],"failure":[{"request_range":{"key":"`+foo+`","keys_only":true}}]}`)
		sd.post("txn duplicate key", c, "/v3/kv/txn", `{"success":[{"request_put":{"key":"`+foo+`"}},{"request_put":{"key":"`+foo+`"}}]}`)
		sd.post("deleterange prev_kv", c, "/v3/kv/deleterange", `{"key":"`+b64("fop")+`","prev_kv":true}`)
		sd.post("deleterange none", c, "/v3/kv/deleterange", `{"key":"`+b64("fop")+`"}`)
		sd.post("compaction", c, "/v3/kv/compaction", `{"revision":3,"physical":true}`)
		sd.post("compaction again", c, "/v3/kv/compaction", `{"revision":3}`)
		sd.post("range compacted revision", c, "/v3/kv/range", `{"key":"`+foo+`","revision":2}`)

		// Errors.
		sd.post("empty key", c, "/v3/kv/put", `{"key":"","value":"`+bar+`"}`)
		sd.post("no key", c, "/v3/kv/put", `{}`)
		sd.post("bad JSON", c, "/v3/kv/put", `{bad json`)
		sd.post("not base64", c, "/v3/kv/put", `{"key":"!!!"}`)
		sd.post("wrong type", c, "/v3/kv/range", `{"key":"`+foo+`","limit":"x"}`)
		sd.post("unknown field", c, "/v3/kv/range", `{"key":"`+foo+`","nosuchfield":1}`)
		sd.post("empty body", c, "/v3/kv/range", ``)
		sd.post("bad enum", c, "/v3/kv/range", `{"key":"`+foo+`","sort_order":"SIDEWAYS"}`)
		sd.post("with JSON content type", c, "/v3/kv/range", `{"key":"`+foo+`"}`, "-H", "Content-Type: application/json")
		sd.get("GET on a POST path: GET /v3/kv/range", c+"/v3/kv/range")
		sd.get("PUT on a POST path: PUT /v3/kv/put", c+"/v3/kv/put", "-X", "PUT", "-d", `{"key":"`+foo+`"}`)
		sd.get("DELETE on a POST path: DELETE /v3/kv/deleterange", c+"/v3/kv/deleterange", "-X", "DELETE")
		sd.post("unknown /v3 path", c, "/v3/kv/nosuch", `{}`)
		sd.get("unknown /v3 path: GET /v3/", c+"/v3/")
		sd.post("v3beta path", c, "/v3beta/kv/range", `{"key":"`+foo+`"}`)
		sd.post("v3alpha path", c, "/v3alpha/kv/range", `{"key":"`+foo+`"}`)
		sd.get("unknown path: GET /nosuch", c+"/nosuch")
		sd.get("OPTIONS /v3/kv/range", c+"/v3/kv/range", "-X", "OPTIONS", "-H", "Origin: http://example.com", "-H", "Access-Control-Request-Method: POST")

		// Watch: a streaming response, read while puts are made.
		w := curlStart(t, "-X", "POST", "-d", `{"create_request":{"key":"`+b64("w")+`","prev_kv":true}}`, c+"/v3/watch")
		if l, ok := w.next(httpWait); ok {
			curl(t, 10*time.Second, "-X", "POST", "-d", `{"key":"`+b64("w")+`","value":"`+b64("1")+`"}`, c+"/v3/kv/put")
			curl(t, 10*time.Second, "-X", "POST", "-d", `{"key":"`+b64("w")+`","value":"`+b64("2")+`"}`, c+"/v3/kv/put")
			r := w.read(t, 2)
			r.Body = l + "\n" + r.Body
			sd.record("watch: POST /v3/watch create_request, then two puts (streamed)", r)
		} else {
			sd.record("watch: POST /v3/watch create_request, then two puts (streamed)", w.read(t, 1))
		}
		// Streams whose answers need no further put: curl is stopped once
		// the expected number of lines is in.
		watch := func(name, body string, lines int, anyOrder bool) {
			r := curlStart(t, "-X", "POST", "-d", body, c+"/v3/watch").read(t, lines)
			if anyOrder {
				l := strings.Split(strings.TrimSuffix(r.Body, "\n"), "\n")
				slices.Sort(l)
				r.Body = strings.Join(l, "\n") + "\n"
				name += " (lines sorted)"
			}
			sd.record("watch: "+name+": POST /v3/watch "+body+" (streamed)", r)
		}
		wkey := b64("w")
		watch("history", `{"create_request":{"key":"`+wkey+`","start_revision":7,"watch_id":7}}`, 2, false)
		watch("compacted revision", `{"create_request":{"key":"`+wkey+`","start_revision":2}}`, 2, false)
		watch("two watchers and a cancel", `{"create_request":{"key":"`+b64("v")+`","range_end":"`+b64("x")+`","watch_id":8,"filters":["NODELETE"]}}{"create_request":{"key":"`+b64("z")+`","watch_id":9}}{"cancel_request":{"watch_id":8}}`, 3, false)
		watch("progress", `{"create_request":{"key":"`+wkey+`"}}{"progress_request":{}}`, 2, true)

		// Lease.
		sd.post("lease grant", c, "/v3/lease/grant", `{"TTL":60,"ID":1000}`)
		sd.post("lease grant same ID", c, "/v3/lease/grant", `{"TTL":60,"ID":1000}`)
		sd.post("lease grant server-chosen ID", c, "/v3/lease/grant", `{"TTL":30}`)
		sd.post("put with lease", c, "/v3/kv/put", `{"key":"`+b64("leased")+`","value":"`+bar+`","lease":1000}`)
		sd.post("put with unknown lease", c, "/v3/kv/put", `{"key":"`+b64("leased")+`","lease":999}`)
		sd.post("lease keepalive (stream of two)", c, "/v3/lease/keepalive", `{"ID":1000}{"ID":1000}`)
		sd.post("lease keepalive unknown", c, "/v3/lease/keepalive", `{"ID":999}`)
		sd.post("lease timetolive keys", c, "/v3/lease/timetolive", `{"ID":1000,"keys":true}`)
		sd.post("lease timetolive unknown", c, "/v3/lease/timetolive", `{"ID":999}`)
		sd.post("lease leases", c, "/v3/lease/leases", `{}`)
		sd.post("old path timetolive", c, "/v3/kv/lease/timetolive", `{"ID":1000}`)
		sd.post("old path leases", c, "/v3/kv/lease/leases", `{}`)
		sd.post("lease revoke", c, "/v3/lease/revoke", `{"ID":1000}`)
		sd.post("lease revoke again", c, "/v3/lease/revoke", `{"ID":1000}`)
		sd.post("old path revoke", c, "/v3/kv/lease/revoke", `{"ID":1000}`)
		sd.post("leased key gone", c, "/v3/kv/range", `{"key":"`+b64("leased")+`"}`)

		// Cluster.
		sd.post("member list", c, "/v3/cluster/member/list", `{}`)
		sd.post("member list linearizable", c, "/v3/cluster/member/list", `{"linearizable":true}`)
		fakePort := FreePort(t)
		sd.port(fakePort, "nobody")
		fake := fmt.Sprintf("http://127.0.0.1:%d", fakePort)
		r := sd.post("member add learner", c, "/v3/cluster/member/add", `{"peerURLs":["`+fake+`"],"isLearner":true}`)
		if r.Status == 200 {
			id := jsonField(t, r.Body, "member", "ID")
			sd.post("member list with learner", c, "/v3/cluster/member/list", `{}`)
			sd.post("member promote unready learner", c, "/v3/cluster/member/promote", `{"ID":"`+id+`"}`)
			sd.post("member update learner", c, "/v3/cluster/member/update", `{"ID":"`+id+`","peerURLs":["`+fake+`"]}`)
			sd.post("member remove learner", c, "/v3/cluster/member/remove", `{"ID":"`+id+`"}`)
		}
		sd.post("member remove unknown", c, "/v3/cluster/member/remove", `{"ID":"12345"}`)

		// Maintenance.
		sd.post("status", c, "/v3/maintenance/status", `{}`)
		sd.post("alarm list", c, "/v3/maintenance/alarm", `{"action":"GET"}`)
		sd.post("hash", c, "/v3/maintenance/hash", `{}`)
		sd.post("hashkv", c, "/v3/maintenance/hashkv", `{"revision":0}`)
		sd.post("hashkv compacted", c, "/v3/maintenance/hashkv", `{"revision":2}`)
		sd.post("defragment", c, "/v3/maintenance/defragment", `{}`)
		// A store bigger than one snapshot chunk (32 KiB) on both (and an
		// argument shorter than Linux's 128 KiB limit).
		big := b64(strings.Repeat("x", 60<<10))
		curl(t, 10*time.Second, "-X", "POST", "-d", `{"key":"`+b64("big")+`","value":"`+big+`"}`, c+"/v3/kv/put")
		r = curl(t, 30*time.Second, "-X", "POST", "-d", `{}`, c+"/v3/maintenance/snapshot")
		framing := snapshotFraming(r.Body)
		r.Body = ""
		sd.record("snapshot: POST /v3/maintenance/snapshot (streamed; framing only)", r)
		sd.note("snapshot framing", "%s", framing)
		sd.post("transfer leadership to self", c, "/v3/maintenance/transfer-leadership", `{"targetID":"1"}`)

		// Lock and Election (with a lease, as clients use them).
		sd.post("lease for lock", c, "/v3/lease/grant", `{"TTL":60,"ID":2000}`)
		r = sd.post("lock", c, "/v3/lock/lock", `{"name":"`+b64("mylock")+`","lease":2000}`)
		if r.Status == 200 {
			key := jsonField(t, r.Body, "key")
			sd.post("range lock key", c, "/v3/kv/range", `{"key":"`+key+`"}`)
			sd.post("unlock", c, "/v3/lock/unlock", `{"key":"`+key+`"}`)
		}
		sd.post("lock without name", c, "/v3/lock/lock", `{"lease":2000}`)
		sd.post("lock unknown lease", c, "/v3/lock/lock", `{"name":"`+b64("mylock")+`","lease":999}`)
		r = sd.post("campaign", c, "/v3/election/campaign", `{"name":"`+b64("myelection")+`","value":"`+b64("v1")+`","lease":2000}`)
		sd.post("leader", c, "/v3/election/leader", `{"name":"`+b64("myelection")+`"}`)
		if r.Status == 200 {
			v, err := parseJSON(r.Body)
			if err != nil {
				t.Fatal(err)
			}
			leader, _ := v.(jobj).get("leader")
			var b strings.Builder
			renderJSON(&b, leader)
			sd.post("proclaim", c, "/v3/election/proclaim", `{"leader":`+b.String()+`,"value":"`+b64("v2")+`"}`)
			sd.post("leader after proclaim", c, "/v3/election/leader", `{"name":"`+b64("myelection")+`"}`)
			sd.post("resign", c, "/v3/election/resign", `{"leader":`+b.String()+`}`)
		}
		sd.post("leader after resign", c, "/v3/election/leader", `{"name":"`+b64("myelection")+`"}`)
		sd.post("proclaim without leadership", c, "/v3/election/proclaim", `{"leader":{"name":"`+b64("myelection")+`","key":"`+b64("myelection/1")+`","rev":1,"lease":2000},"value":"`+b64("v3")+`"}`)
		// Observe is a server stream: the current leader, then changes.
		sd.post("campaign again", c, "/v3/election/campaign", `{"name":"`+b64("myelection")+`","value":"`+b64("v4")+`","lease":2000}`)
		sd.record("observe: POST /v3/election/observe (streamed)",
			curlStart(t, "-X", "POST", "-d", `{"name":"`+b64("myelection")+`"}`, c+"/v3/election/observe").read(t, 1))

		// Auth.
		sd.post("user add root", c, "/v3/auth/user/add", `{"name":"root","password":"rootpw"}`)
		sd.post("role add root", c, "/v3/auth/role/add", `{"name":"root"}`)
		sd.post("user grant root", c, "/v3/auth/user/grant", `{"user":"root","role":"root"}`)
		sd.post("user add alice", c, "/v3/auth/user/add", `{"name":"alice","password":"alicepw"}`)
		sd.post("role add app", c, "/v3/auth/role/add", `{"name":"app"}`)
		sd.post("role grant permission", c, "/v3/auth/role/grant", `{"name":"app","perm":{"permType":"READWRITE","key":"`+b64("app/")+`","range_end":"`+b64("app0")+`"}}`)
		sd.post("user grant alice", c, "/v3/auth/user/grant", `{"user":"alice","role":"app"}`)
		sd.post("role get", c, "/v3/auth/role/get", `{"role":"app"}`)
		sd.post("role revoke unknown permission", c, "/v3/auth/role/revoke", `{"role":"app","key":"`+b64("zzz")+`"}`)
		sd.post("user get", c, "/v3/auth/user/get", `{"name":"alice"}`)
		sd.post("role list", c, "/v3/auth/role/list", `{}`)
		sd.post("auth enable", c, "/v3/auth/enable", `{}`)
		sd.post("no token", c, "/v3/kv/range", `{"key":"`+foo+`"}`)
		sd.post("authenticate bad password", c, "/v3/auth/authenticate", `{"name":"root","password":"nope"}`)
		sd.post("authenticate unknown user", c, "/v3/auth/authenticate", `{"name":"bob","password":"nope"}`)
		r = sd.post("authenticate root", c, "/v3/auth/authenticate", `{"name":"root","password":"rootpw"}`)
		if r.Status != 200 {
			t.Fatalf("authenticate: %d %s", r.Status, r.Body)
		}
		root := jsonField(t, r.Body, "token")
		r = sd.post("authenticate alice", c, "/v3/auth/authenticate", `{"name":"alice","password":"alicepw"}`)
		alice := jsonField(t, r.Body, "token")
		sd.post("with root token", c, "/v3/kv/range", `{"key":"`+foo+`"}`, "-H", "Authorization: "+root)
		sd.post("with root token as Bearer", c, "/v3/kv/range", `{"key":"`+foo+`"}`, "-H", "Authorization: Bearer "+root)
		sd.post("with a bogus token", c, "/v3/kv/range", `{"key":"`+foo+`"}`, "-H", "Authorization: bogus")
		sd.post("alice in her prefix", c, "/v3/kv/put", `{"key":"`+b64("app/x")+`","value":"`+bar+`"}`, "-H", "Authorization: "+alice)
		sd.post("alice outside", c, "/v3/kv/put", `{"key":"`+foo+`","value":"`+bar+`"}`, "-H", "Authorization: "+alice)
		sd.post("alice user list", c, "/v3/auth/user/list", `{}`, "-H", "Authorization: "+alice)
		sd.post("root user list", c, "/v3/auth/user/list", `{}`, "-H", "Authorization: "+root)
		sd.post("auth status", c, "/v3/auth/status", `{}`, "-H", "Authorization: "+root)
		sd.record("watch without token: POST /v3/watch (streamed)",
			curlStart(t, "-X", "POST", "-d", `{"create_request":{"key":"`+foo+`"}}`, c+"/v3/watch").read(t, 1))
		sd.record("watch with root token: POST /v3/watch (streamed)",
			curlStart(t, "-X", "POST", "-H", "Authorization: "+root, "-d", `{"create_request":{"key":"`+foo+`"}}`, c+"/v3/watch").read(t, 1))
		sd.get("health with auth on: GET /health", c+"/health")
		sd.post("auth disable", c, "/v3/auth/disable", `{}`, "-H", "Authorization: "+root)
		sd.post("auth status after disable", c, "/v3/auth/status", `{}`)
	})
}

// TestHTTPTLS: with https client URLs and client certificate auth
// (--client-cert-auth), and https on the --listen-metrics-urls port too:
// /health, /livez, /readyz, /version, /metrics and the gateway (a put, a
// range, a watch stream) over curl --cacert --cert --key; without a client
// certificate, with another CA's, and over plain http: refused as etcd
// refuses them.
func TestHTTPTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "http")
	other := newTestCA(t, dir, "other")
	srvCert, srvKey := ca.issue(t, "server")
	cliCert, cliKey := ca.issue(t, "client")
	strangerCert, strangerKey := other.issue(t, "stranger")
	bothKinds(t, func(t *testing.T, sd *hside) {
		mport := FreePort(t)
		metrics := "https://127.0.0.1:" + strconv.Itoa(mport)
		s := startKind(t, sd.kind, WithHTTPS(true, false), WithFlags(
			"--cert-file="+srvCert, "--key-file="+srvKey, "--trusted-ca-file="+ca.file, "--client-cert-auth",
			"--listen-metrics-urls="+metrics,
		))
		sd.port(s.ClientPort, "client")
		sd.port(s.PeerPort, "peer")
		sd.port(mport, "metrics")
		c := s.ClientURL()
		auth := []string{"--cacert", ca.file, "--cert", cliCert, "--key", cliKey}
		// The server may come up a moment after its ready line.
		pollCurl(t, "the https client port", statusIs(200), append(auth, c+"/health")...)
		migrated(t, c+"/version", auth...)
		for _, p := range []string{"/health", "/health?serializable=true", "/livez", "/readyz?verbose", "/version"} {
			sd.get("https GET "+p, c+p, auth...)
			sd.get("https metrics port GET "+p, metrics+p, auth...)
		}
		for _, base := range []string{c, metrics} {
			r := curl(t, 10*time.Second, append(auth, base+"/metrics")...)
			sd.note("https GET /metrics on "+base+": status and type", "%d %s", r.Status, r.Header.Get("Content-Type"))
		}
		sd.post("https put", c, "/v3/kv/put", `{"key":"`+b64("k")+`","value":"`+b64("v")+`"}`, auth...)
		sd.post("https range", c, "/v3/kv/range", `{"key":"`+b64("k")+`"}`, auth...)
		sd.record("https watch: POST /v3/watch (streamed)",
			curlStart(t, append(auth, "-X", "POST", "-d", `{"create_request":{"key":"`+b64("k")+`","start_revision":1}}`, c+"/v3/watch")...).read(t, 2))

		// Refusals. How curl fails on a handshake the server refuses
		// depends on when the server's alert arrives (exit status 16, 35,
		// 55 or 56, with their messages): only the failure is compared.
		exitOnly := func(name string, r curlResult) {
			if r.Status == 0 && r.Err != "" {
				r.Err = "curl failed"
			}
			sd.record(name, r)
		}
		exitOnly("no client certificate: GET /health", curl(t, 10*time.Second, "--cacert", ca.file, c+"/health"))
		exitOnly("another CA's certificate: GET /health", curl(t, 10*time.Second, "--cacert", ca.file, "--cert", strangerCert, "--key", strangerKey, c+"/health"))
		exitOnly("no client certificate, metrics port: GET /health", curl(t, 10*time.Second, "--cacert", ca.file, metrics+"/health"))
		exitOnly("trusting another CA: GET /health", curl(t, 10*time.Second, "--cacert", other.file, "--cert", cliCert, "--key", cliKey, c+"/health"))
		exitOnly("plain http to the https port: GET /health", curl(t, 10*time.Second, "http://"+s.Endpoint()+"/health"))
		sd.get("peer port (http) GET /version", s.PeerURL()+"/version")
	})
}

// TestHTTPServingFlags: --listen-client-http-urls moves the HTTP side to
// its own URL (the client URL then serves gRPC only: an HTTP/1.1 request
// gets an HTTP/2 frame back), --enable-pprof serves /debug/pprof/ there,
// and --enable-grpc-gateway=false drops /v3/.
func TestHTTPServingFlags(t *testing.T) {
	bothKinds(t, func(t *testing.T, sd *hside) {
		hport := FreePort(t)
		h := "http://127.0.0.1:" + strconv.Itoa(hport)
		s := startKind(t, sd.kind, WithFlags("--listen-client-http-urls="+h, "--enable-pprof", "--enable-grpc-gateway=false"))
		sd.port(s.ClientPort, "client")
		sd.port(s.PeerPort, "peer")
		sd.port(hport, "client-http")
		pollCurl(t, "the client http URL", statusIs(200), h+"/health")
		migrated(t, h+"/version")
		for _, p := range []string{"/health", "/livez", "/readyz?verbose", "/version"} {
			sd.get("client-http GET "+p, h+p)
		}
		sd.post("gateway off", h, "/v3/kv/range", `{"key":"`+b64("k")+`"}`)
		for _, p := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1"} {
			r := curl(t, 10*time.Second, h+p)
			sd.note("client-http GET "+p+": status and type", "%d %s", r.Status, r.Header.Get("Content-Type"))
		}
		// The gRPC-only client URL.
		sd.get("grpc-only client URL GET /health", s.ClientURL()+"/health")
		cli := s.Client(t)
		_, err := cli.Put(ctxFor(t), "k", "v")
		sd.note("grpc-only client URL: gRPC Put", "%v", err)
		sd.note("grpc-only client URL: grpc Health.Check", "%s", grpcHealth(cli, ""))
	})
}

// etcdctlLines keeps the PASS and FAIL lines of an etcdctl check's output
// (not its progress bar), with the numbers in them replaced by N.
func etcdctlLines(out string) string {
	var keep []string
	for _, l := range strings.FieldsFunc(out, func(r rune) bool { return r == '\n' || r == '\r' }) {
		for _, w := range []string{"PASS", "FAIL"} {
			if i := strings.Index(l, w); i >= 0 {
				keep = append(keep, numberRE.ReplaceAllString(l[i:], "N"))
			}
		}
	}
	return strings.Join(keep, "\n")
}

var numberRE = regexp.MustCompile(`-?[0-9]+(\.[0-9]+)?`)

// TestHTTPEtcdctlCheck: `etcdctl check datascale --load=s` (10000 puts of
// 1 KiB, reading process_resident_memory_bytes from /metrics before and
// after) succeeds against MetaStore as against etcd. (`check perf` judges
// the machine's latencies as much as the server: TestEtcdctlCheckPerf
// checks that it runs cleanly against MetaStore without requiring its
// verdict.)
func TestHTTPEtcdctlCheck(t *testing.T) {
	bothKinds(t, func(t *testing.T, sd *hside) {
		s := startKind(t, sd.kind)
		out, errOut, err := Etcdctl(t, s.Endpoint(), "check", "datascale", "--load=s")
		sd.note("etcdctl check datascale --load=s", "exit error: %v\n%s", err != nil, etcdctlLines(out))
		if err != nil || !strings.Contains(out, "PASS") {
			t.Errorf("%s: check datascale: %v\n%s\n%s", sd.kind, err, out, errOut)
		}
	})
}

// TestHTTPAccessControl: --cors and --host-whitelist on the client port,
// as etcd applies them: CORS headers only for the listed origins, a
// preflight OPTIONS answered, and a plain-HTTP request naming a host that
// is not listed refused with 421 and etcd's DNS-rebinding explanation.
func TestHTTPAccessControl(t *testing.T) {
	bothKinds(t, func(t *testing.T, sd *hside) {
		s := startKind(t, sd.kind, WithFlags("--cors=http://a.example:8080,https://b.example:8443", "--host-whitelist=127.0.0.1,metastore.example"))
		sd.port(s.ClientPort, "client")
		sd.port(s.PeerPort, "peer")
		c := s.ClientURL()
		pollCurl(t, "the member to be healthy", statusIs(200), c+"/health")
		migrated(t, c+"/version") // step 3 shows the storage version
		sd.get("no Origin: GET /health", c+"/health")
		sd.get("listed Origin: GET /health", c+"/health", "-H", "Origin: http://a.example:8080")
		sd.get("other listed Origin: GET /version", c+"/version", "-H", "Origin: https://b.example:8443")
		sd.get("unlisted Origin: GET /health", c+"/health", "-H", "Origin: http://evil.example:8080")
		sd.get("preflight: OPTIONS /v3/kv/range", c+"/v3/kv/range", "-X", "OPTIONS", "-H", "Origin: http://a.example:8080")
		sd.get("listed Host: GET /health", c+"/health", "-H", "Host: metastore.example:2379")
		sd.get("unlisted Host: GET /health", c+"/health", "-H", "Host: rebind.example")
		sd.post("unlisted Host: POST /v3/kv/range", c, "/v3/kv/range", `{"key":"`+b64("k")+`"}`, "-H", "Host: rebind.example:2379")
	})
}

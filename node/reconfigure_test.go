package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/metastore/metastore/node"
	"github.com/metastore/metastore/node/nodetest"
	"github.com/metastore/metastore/testkit"
)

// startOnFakeClock starts cfg's member on a fake clock and ticks it until
// it leads.
func startOnFakeClock(t *testing.T, cfg node.Config) (*node.Node, *testkit.FakeClock) {
	t.Helper()
	clock := testkit.NewFakeClock(time.Unix(1_700_000_000, 0))
	cfg.Clock = clock
	n, err := node.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	deadline := time.After(15 * time.Second)
	for {
		select {
		case <-n.Ready():
			return n, clock
		case <-deadline:
			t.Fatal("never led")
		case <-time.After(5 * time.Millisecond): // raft's ticker may not be armed yet
			clock.Advance(heartbeat)
		}
	}
}

// Reconfigure on a running member: each change shows where a user sees
// it — a put refused for the quota and, once NOSPACE is raised, still
// refused after the quota is raised, until disarmed; auto-compaction
// turned on compacting at the revision of its start a retention later; the
// defragmentation pace on /metrics; the apply warning threshold in the
// log; corruption checks starting; a new simple token living by the new
// TTL. A refused change changes nothing.
func TestReconfigureRunningMember(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	cfg := nodetest.Lone("reload", t.TempDir())
	cfg.Logger = zap.New(core)
	cfg.AutoCompactionMode = "periodic"
	cfg.DefragRateBytes = 12 << 20
	n, clock := startOnFakeClock(t, cfg)
	cli := nodetest.Client(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if got, want := n.Live(), (node.Live{AuthTokenTTL: 300 * time.Second, QuotaBackendBytes: 2 << 30,
		AutoCompactionMode: "periodic", DefragRateBytes: 12 << 20}); got != want {
		t.Fatalf("Live at start %+v, want %+v", got, want)
	}
	live := n.Live()
	reconfigure := func(change func(*node.Live)) {
		t.Helper()
		change(&live)
		if err := n.Reconfigure(live); err != nil {
			t.Fatal(err)
		}
		if got := n.Live(); got != live {
			t.Fatalf("Live %+v after Reconfigure(%+v)", got, live)
		}
	}
	put := func(k, v string) (int64, error) {
		r, err := cli.Put(ctx, k, v)
		if err != nil {
			return 0, err
		}
		return r.Header.Revision, nil
	}

	// Nonsense is refused, with the good changes beside it.
	before := n.Live()
	bad := before
	bad.QuotaBackendBytes, bad.CorruptCheckTime = 1, -time.Second
	if err := n.Reconfigure(bad); err == nil || !strings.Contains(err.Error(), "corrupt-check-time") {
		t.Fatalf("Reconfigure with a negative corrupt check time: %v", err)
	}
	if n.Live() != before {
		t.Fatalf("a refused Reconfigure changed Live to %+v", n.Live())
	}
	if _, err := put("fits", "in 2 GiB"); err != nil {
		t.Fatalf("the quota of a refused Reconfigure took effect: %v", err)
	}

	// The apply warning threshold.
	reconfigure(func(l *node.Live) { l.WarningApplyDuration = time.Nanosecond })
	if _, err := put("slow", "x"); err != nil {
		t.Fatal(err)
	}
	warned := logs.FilterMessage("apply request took too long").All()
	if len(warned) == 0 || warned[len(warned)-1].ContextMap()["expected-duration"] != time.Nanosecond {
		t.Fatalf("a put after the threshold went to 1ns: warnings %v", warned)
	}

	// The quota.
	st, err := cli.Status(ctx, n.ClientAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	quota := st.DbSizeInUse + 1000
	reconfigure(func(l *node.Live) { l.QuotaBackendBytes = quota })
	if st, err := cli.Status(ctx, n.ClientAddrs()[0]); err != nil || st.DbSizeQuota != quota {
		t.Fatalf("Status after the quota changed to %d: %v %v", quota, st, err)
	}
	big := strings.Repeat("v", 2000)
	if _, err := put("big", big); !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("a put past the lowered quota: %v, want %v", err, rpctypes.ErrNoSpace)
	}
	reconfigure(func(l *node.Live) { l.QuotaBackendBytes = 0 })
	if _, err := put("big", big); !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("a put with NOSPACE raised, after the quota was raised: %v, want %v", err, rpctypes.ErrNoSpace)
	}
	alarms, err := cli.AlarmList(ctx)
	if err != nil || len(alarms.Alarms) != 1 || alarms.Alarms[0].Alarm != pb.AlarmType_NOSPACE {
		t.Fatalf("alarms %v %v, want NOSPACE", alarms, err)
	}
	if _, err := cli.AlarmDisarm(ctx, (*clientv3.AlarmMember)(alarms.Alarms[0])); err != nil {
		t.Fatal(err)
	}
	if _, err := put("big", big); err != nil {
		t.Fatalf("a put after the alarm was disarmed: %v", err)
	}

	// Auto-compaction, off at start: periodic 10s compacts, 10s of fake
	// time after the change, at the revision of the change. Only the
	// compactor arms one-shot timers on the clock: each step waits until
	// it has armed its next.
	rev, err := put("before", "compaction")
	if err != nil {
		t.Fatal(err)
	}
	changed := clock.Now()
	reconfigure(func(l *node.Live) { l.AutoCompactionRetention = 10 * time.Second })
	armed := clock.Pending()
	if _, err := put("after", "change"); err != nil {
		t.Fatal(err)
	}
	compacted := func() bool { return logs.FilterMessage("completed auto periodic compaction").Len() > 0 }
	for !compacted() {
		if clock.Now().Sub(changed) >= time.Minute {
			t.Fatal("no compaction a minute after periodic 10s was turned on")
		}
		clock.Advance(time.Second)
		if !clock.WaitPending(armed, 15*time.Second) {
			t.Fatal("the compactor did not arm its next check")
		}
		if logs.FilterMessage("starting auto periodic compaction").Len() > 0 {
			waitFor(t, "the compaction's result", 15*time.Second, compacted)
		}
	}
	if at := clock.Now().Sub(changed); at != 10*time.Second {
		t.Fatalf("compacted %v after the change, want 10s", at)
	}
	if _, err := cli.Get(ctx, "before", clientv3.WithRev(rev-1)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("a read below the revision of the change: %v, want %v", err, rpctypes.ErrCompacted)
	}
	if _, err := cli.Get(ctx, "before", clientv3.WithRev(rev)); err != nil {
		t.Fatalf("a read at the revision of the change: %v", err)
	}
	reconfigure(func(l *node.Live) { l.AutoCompactionRetention = 0 })

	// The defragmentation pace, read back from /metrics.
	reconfigure(func(l *node.Live) { l.DefragRateBytes = 1 << 20 })
	if m := scrapeMetrics(t, n); !strings.Contains(m, "\nmetastore_defrag_rate_bytes 1.048576e+06\n") {
		t.Fatalf("/metrics after the defrag rate changed to 1 MiB/s:\n%s", grepLines(m, "metastore_defrag_rate_bytes"))
	}
	if _, err := cli.Defragment(ctx, n.ClientAddrs()[0]); err != nil {
		t.Fatal(err)
	}

	// Corruption checks, off at start.
	reconfigure(func(l *node.Live) { l.CorruptCheckTime = time.Minute })
	clock.Advance(time.Minute)
	waitFor(t, "a corruption check", 15*time.Second, func() bool {
		return logs.FilterMessage("finished peer corruption check").Len() > 0
	})
	reconfigure(func(l *node.Live) { l.CorruptCheckTime = 0 })

	// The unary request warning threshold: a put is logged at warn
	// ("request stats") only once it is 1ns, and no longer back at 0
	// (etcd's 300ms).
	statsWarns := func() int {
		return logs.FilterMessage("request stats").FilterLevelExact(zap.WarnLevel).Len()
	}
	if _, err := put("fast", "x"); err != nil || statsWarns() != 0 {
		t.Fatalf("a put under 300ms: %v, %d request stats warnings", err, statsWarns())
	}
	reconfigure(func(l *node.Live) { l.WarningUnaryRequestDuration = time.Nanosecond })
	if _, err := put("slow", "y"); err != nil || statsWarns() != 1 {
		t.Fatalf("a put over 1ns: %v, %d request stats warnings, want 1", err, statsWarns())
	}
	reconfigure(func(l *node.Live) { l.WarningUnaryRequestDuration = 0 })
	if _, err := put("fast", "y"); err != nil || statsWarns() != 1 {
		t.Fatalf("a put under 300ms again: %v, %d request stats warnings, want still 1", err, statsWarns())
	}
	// The simple-token TTL: a token issued after the change to 30s ends
	// 30s after its last use (300s at start).
	reconfigure(func(l *node.Live) { l.AuthTokenTTL = 30 * time.Second })
	conn, err := grpc.NewClient(n.ClientAddrs()[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	auth, kv := pb.NewAuthClient(conn), pb.NewKVClient(conn)
	for _, step := range []func() error{
		func() error {
			_, err := auth.UserAdd(ctx, &pb.AuthUserAddRequest{Name: "root", Password: "pw"})
			return err
		},
		func() error {
			_, err := auth.UserGrantRole(ctx, &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"})
			return err
		},
		func() error { _, err := auth.AuthEnable(ctx, &pb.AuthEnableRequest{}); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	login, err := auth.Authenticate(ctx, &pb.AuthenticateRequest{Name: "root", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	withToken := metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, login.Token)
	get := func() error { _, err := kv.Range(withToken, &pb.RangeRequest{Key: []byte("big")}); return err }
	clock.Advance(29 * time.Second)
	if err := get(); err != nil {
		t.Fatalf("the token 29s after it was issued: %v", err)
	}
	clock.Advance(31 * time.Second)
	if err := get(); !errors.Is(err, rpctypes.ErrGRPCInvalidAuthToken) {
		t.Fatalf("the token 31s after its last use: %v, want %v", err, rpctypes.ErrGRPCInvalidAuthToken)
	}

	want := []string{
		"warning-apply-duration: 100ms -> 1ns",
		fmt.Sprintf("quota-backend-bytes: 2147483648 -> %d", quota), fmt.Sprintf("quota-backend-bytes: %d -> 2147483648", quota),
		"auto-compaction-retention: 0s -> 10s", "auto-compaction-retention: 10s -> 0s",
		"defrag-rate-bytes: 12582912 -> 1048576",
		"corrupt-check-time: 0s -> 1m0s", "corrupt-check-time: 1m0s -> 0s",
		"warning-unary-request-duration: 300ms -> 1ns", "warning-unary-request-duration: 1ns -> 300ms",
		"auth-token-ttl: 5m0s -> 30s",
	}
	if got := testkit.SettingChanges(logs); !slices.Equal(got, want) {
		t.Errorf("changes logged:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// scrapeMetrics is the member's /metrics on its client port.
func scrapeMetrics(t *testing.T, n *node.Node) string {
	t.Helper()
	resp, err := http.Get("http://" + n.ClientAddrs()[0] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

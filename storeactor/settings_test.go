package storeactor_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
)

// tell sends the store a settings message built around a reply channel
// and returns its answer.
func (h *harness) tell(build func(reply chan<- error) any) error {
	h.t.Helper()
	err, askErr := actors.Ask(context.Background(), h.kit.Root(), h.pid, build)
	if askErr != nil {
		h.t.Fatal(askErr)
	}
	return err
}

func (h *harness) setQuota(bytes int64) {
	h.t.Helper()
	if err := h.tell(func(r chan<- error) any { return &storeactor.SetQuota{Bytes: bytes, Reply: r} }); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) setWarnApply(d time.Duration) error {
	h.t.Helper()
	return h.tell(func(r chan<- error) any { return &storeactor.SetWarnApplyDuration{Duration: d, Reply: r} })
}

// Changing --quota-backend-bytes while running, as etcd would have it
// after a restart with the new value: lowering the quota makes the next
// write that does not fit be refused (the gateway then raises NOSPACE);
// raising it does not disarm a NOSPACE alarm, which keeps refusing writes
// until it is disarmed. Each change is logged once and counted.
func TestQuotaChangeLeavesTheAlarmToDisarm(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	h := newHarness(t, func(c *storeactor.Config) { c.Logger = zap.New(core); c.QuotaBytes = 1 << 30 })
	reg := testkit.Registry(t)
	before, _ := scrape(t, reg).Value("metastore_config_reloads_total", "setting", "quota-backend-bytes")
	big := &pb.PutRequest{Key: []byte("big"), Value: []byte(strings.Repeat("v", 1000))}
	if q := h.reader.QuotaBytes(); q != 1<<30 {
		t.Fatalf("quota at start %d, want the configured 1 GiB", q)
	}
	h.put("a", "1")
	if !h.reader.QuotaAvailable(big) {
		t.Fatal("a 1 KB put does not fit in 1 GiB")
	}

	quota := h.reader.View().LiveBytes + 500
	h.setQuota(quota)
	if h.reader.QuotaAvailable(big) {
		t.Fatal("after the quota was lowered, a put that takes the store past it still fits")
	}
	if !h.reader.QuotaAvailable(&pb.PutRequest{Key: []byte("s")}) || !h.reader.QuotaAvailable(&pb.DeleteRangeRequest{Key: []byte("a")}) {
		t.Fatal("a put that fits, or a delete, is refused")
	}
	// What the gateway does with a write that does not fit.
	h.must(&pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE}})

	h.setQuota(0) // etcd's default, 2 GiB
	if q := h.reader.QuotaBytes(); q != storeactor.DefaultQuotaBytes {
		t.Fatalf("quota 0 runs as %d, want etcd's default", q)
	}
	if !h.reader.QuotaAvailable(big) {
		t.Fatal("after the quota was raised, the put still does not fit")
	}
	wantErr(t, "put under NOSPACE after the quota was raised", h.do(putOpt(big)).Err, rpctypes.ErrGRPCNoSpace)
	h.must(&pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE}})
	h.must(putOpt(big))

	h.setQuota(-1) // no quota, as etcd's passthrough
	if h.reader.QuotaBytes() != -1 || !h.reader.QuotaAvailable(big) {
		t.Fatal("a negative quota does not turn the quota off")
	}
	h.setQuota(-1) // no change: nothing logged

	want := []string{
		fmt.Sprintf("quota-backend-bytes: 1073741824 -> %d", quota),
		fmt.Sprintf("quota-backend-bytes: %d -> 2147483648", quota),
		"quota-backend-bytes: 2147483648 -> -1",
	}
	if got := testkit.SettingChanges(logs); !slices.Equal(got, want) {
		t.Errorf("logged %q, want %q", got, want)
	}
	if d := scrape(t, reg).Must(t, "metastore_config_reloads_total", "setting", "quota-backend-bytes") - before; d != 3 {
		t.Errorf("metastore_config_reloads_total{quota-backend-bytes} went up by %v, want 3", d)
	}
}

// Changing --warning-apply-duration while running: requests applied from
// then on are measured against the new threshold, also by a store
// restarted after a panic; a negative one is refused with nothing
// changed.
func TestWarnApplyDurationChange(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	h := newHarness(t, func(c *storeactor.Config) { c.Logger = zap.New(core); c.WarnApplyDuration = time.Hour })
	reg := testkit.Registry(t)
	slowBefore := scrape(t, reg).Must(t, "etcd_server_slow_apply_total")
	// slow is the expected-duration of each "apply request took too long"
	// logged so far.
	slow := func() []time.Duration {
		var out []time.Duration
		for _, e := range logs.FilterMessage("apply request took too long").All() {
			out = append(out, e.ContextMap()["expected-duration"].(time.Duration))
		}
		return out
	}
	h.put("a", "1")
	if got := slow(); len(got) != 0 {
		t.Fatalf("warned of a put against an hour's threshold: %v", got)
	}

	if err := h.setWarnApply(time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	h.put("a", "2")
	if got := slow(); !slices.Equal(got, []time.Duration{time.Nanosecond}) {
		t.Fatalf("after the threshold was lowered to 1ns, puts warned %v", got)
	}
	if err := h.setWarnApply(-time.Second); err == nil {
		t.Fatal("a negative threshold was accepted")
	}

	// A store restarted after a panic keeps the threshold it was told.
	ev := h.kit.CaptureEvents()
	h.stop()
	h.pid = h.kit.Spawn(testkit.PanicOn(h.props, func(m any) bool {
		a, ok := m.(*storeactor.Apply)
		return ok && string(a.Entries[0].Req.GetPut().GetKey()) == "crash"
	}))
	h.applyRaw(storeactor.Entry{Index: h.index + 1, Term: 1, Req: putReq("crash", "")})
	ev.ExpectSupervisorEvent(wait) // the Apply was dropped: its index is free again
	h.put("a", "3")
	if got := slow(); !slices.Equal(got, []time.Duration{time.Nanosecond, time.Nanosecond}) {
		t.Fatalf("after a restart, puts warned %v, want both against the 1ns set before", got)
	}
	if d := scrape(t, reg).Must(t, "etcd_server_slow_apply_total") - slowBefore; d != 2 {
		t.Errorf("etcd_server_slow_apply_total went up by %v, want 2", d)
	}

	if err := h.setWarnApply(0); err != nil { // etcd's default
		t.Fatal(err)
	}
	want := []string{"warning-apply-duration: 1h0m0s -> 1ns", "warning-apply-duration: 1ns -> 100ms"}
	if got := testkit.SettingChanges(logs); !slices.Equal(got, want) {
		t.Errorf("logged %q, want %q", got, want)
	}
}

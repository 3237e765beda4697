package compactor_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/compactor"
	"github.com/metastore/metastore/testkit"
)

const wait = 5 * time.Second

// harness runs a Compactor on a fake clock. The test plays both the store
// (the revision it reports) and raft: proposals land in a channel, and the
// test answers each on its reply channel as raft would, when it likes.
//
// A channel rather than a probe stands in for raft because Propose is
// called synchronously while the actor handles a tick: once the tap shows
// the tick handled, "no proposal" is certain without waiting.
type harness struct {
	t        *testing.T
	kit      *testkit.Kit
	clock    *testkit.FakeClock
	tap      *testkit.Tap
	pid      *actor.PID
	cfg      compactor.Config
	logs     *observer.ObservedLogs
	interval time.Duration // one check

	rev       atomic.Int64
	increment atomic.Bool // Rev returns rev+1 and keeps it (etcd's fake RevGetter)
	panicRev  atomic.Bool // the next Rev panics
	leader    atomic.Bool
	proposals chan proposal
}

type proposal struct {
	rev   int64
	reply chan<- actors.Result
}

func newHarness(t *testing.T, mode string, retention time.Duration) *harness {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	h := &harness{t: t, kit: testkit.New(t), clock: testkit.NewFakeClock(time.Unix(1000, 0)),
		logs: logs, proposals: make(chan proposal, 100)}
	h.leader.Store(true)
	h.increment.Store(true)
	h.cfg = compactor.Config{
		Mode: mode, Retention: retention, Clock: h.clock, Logger: zap.New(core),
		Rev: func() int64 {
			if h.panicRev.CompareAndSwap(true, false) {
				panic("injected: store view unavailable")
			}
			if h.increment.Load() {
				return h.rev.Add(1)
			}
			return h.rev.Load()
		},
		Leader: h.leader.Load,
		Propose: func(r *pb.InternalRaftRequest, reply chan<- actors.Result) {
			if r.Compaction == nil || r.Header != nil {
				t.Errorf("proposed %v, want a bare CompactionRequest", r)
			}
			h.proposals <- proposal{rev: r.Compaction.Revision, reply: reply}
		},
	}
	if mode == compactor.ModeRevision {
		h.interval = compactor.RevisionInterval
	} else {
		h.interval, _, _ = compactor.Intervals(retention)
	}
	return h
}

func (h *harness) start() {
	h.t.Helper()
	props, err := compactor.New(h.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.tap = h.kit.NewTap()
	h.pid = h.kit.Spawn(h.tap.Props(props))
}

// step moves the clock to the next check and waits until the actor has
// handled it. It returns the compaction proposed then, or nil.
func (h *harness) step() *proposal {
	h.t.Helper()
	if !h.clock.WaitPending(1, wait) {
		h.t.Fatal("the compactor armed no timer")
	}
	h.clock.Advance(h.interval)
	testkit.ExpectTapped[any](h.tap, wait)
	select {
	case p := <-h.proposals:
		return &p
	default:
		return nil
	}
}

// idle takes n steps that must not compact.
func (h *harness) idle(n int) {
	h.t.Helper()
	for i := 0; i < n; i++ {
		if p := h.step(); p != nil {
			h.t.Fatalf("step %d of %d: unexpected compaction at %d", i+1, n, p.rev)
		}
	}
}

// expectCompaction takes one step that must propose rev.
func (h *harness) expectCompaction(rev int64) proposal {
	h.t.Helper()
	p := h.step()
	if p == nil {
		h.t.Fatalf("no compaction proposed, want one at %d", rev)
	}
	if p.rev != rev {
		h.t.Fatalf("compaction proposed at %d, want %d", p.rev, rev)
	}
	return *p
}

// answer plays raft's reply to p and waits until the actor has it.
func (h *harness) answer(p proposal, err error) {
	h.t.Helper()
	res := actors.Result{Err: err}
	if err == nil {
		res.Resp = &pb.CompactionResponse{Header: &pb.ResponseHeader{Revision: h.rev.Load()}}
	}
	p.reply <- res
	testkit.ExpectTapped[any](h.tap, wait)
}

// messages are the log messages so far, "msg rev=N" for those with a revision.
func (h *harness) messages() []string {
	var out []string
	for _, e := range h.logs.TakeAll() {
		s := e.Message
		if f, ok := e.ContextMap()["revision"]; ok {
			s += " rev=" + toString(f)
		}
		out = append(out, s)
	}
	return out
}

func toString(v any) string {
	if n, ok := v.(int64); ok {
		return strconv.FormatInt(n, 10)
	}
	return fmt.Sprint(v)
}

func TestIntervalsAsEtcd(t *testing.T) {
	for _, c := range []struct {
		retention, sample, compact time.Duration
		window                     int
	}{
		{5 * time.Second, 500 * time.Millisecond, 5 * time.Second, 11},
		{2 * time.Second, 200 * time.Millisecond, 2 * time.Second, 11},
		{59 * time.Minute, 354 * time.Second, 59 * time.Minute, 11},
		{time.Hour, 6 * time.Minute, time.Hour, 11},
		{2 * time.Hour, 6 * time.Minute, time.Hour, 21},
		{24 * time.Hour, 6 * time.Minute, time.Hour, 241},
	} {
		s, ci, w := compactor.Intervals(c.retention)
		if s != c.sample || ci != c.compact || w != c.window {
			t.Errorf("Intervals(%v) = %v, %v, %d; want %v, %v, %d", c.retention, s, ci, w, c.sample, c.compact, c.window)
		}
	}
}

// TestPeriodicWindow: no compaction during the first retention, then one
// per compaction interval at the revision sampled a retention ago; the
// revisions are those etcd's own periodic tests expect (its fake store
// reports one more revision at every sample).
func TestPeriodicWindow(t *testing.T) {
	for _, retention := range []time.Duration{5 * time.Second, time.Hour, 2 * time.Hour} {
		t.Run(retention.String(), func(t *testing.T) {
			h := newHarness(t, compactor.ModePeriodic, retention)
			h.start()
			_, _, window := compactor.Intervals(retention)
			h.idle(window - 2)
			h.answer(h.expectCompaction(1), nil)
			for i := int64(1); i <= 3; i++ {
				h.idle(9) // compactions are min(retention, 1h) apart: 10 samples
				h.answer(h.expectCompaction(10*i), nil)
			}
			got := strings.Join(h.messages(), "\n")
			want := strings.Join([]string{
				"starting auto periodic compaction rev=1", "completed auto periodic compaction rev=1",
				"starting auto periodic compaction rev=10", "completed auto periodic compaction rev=10",
				"starting auto periodic compaction rev=20", "completed auto periodic compaction rev=20",
				"starting auto periodic compaction rev=30", "completed auto periodic compaction rev=30",
			}, "\n")
			if got != want {
				t.Fatalf("log:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestPeriodicLogFields: the log lines carry etcd's fields.
func TestPeriodicLogFields(t *testing.T) {
	h := newHarness(t, compactor.ModePeriodic, 5*time.Second)
	h.start()
	h.idle(9)
	p := h.expectCompaction(1)
	h.clock.Advance(20 * time.Millisecond) // the compaction takes a while
	h.answer(p, nil)
	entries := h.logs.TakeAll()
	if len(entries) != 2 {
		t.Fatalf("log: %v", entries)
	}
	start, done := entries[0].ContextMap(), entries[1].ContextMap()
	if start["compact-period"] != 5*time.Second || start["revision"] != int64(1) {
		t.Errorf("starting: %v", start)
	}
	if done["compact-period"] != 5*time.Second || done["took"] != 20*time.Millisecond || entries[1].Level != zapcore.InfoLevel {
		t.Errorf("completed: %v", done)
	}
}

// TestPeriodicRevisionUnchanged: an idle store is compacted once, then
// left alone until its revision moves and the new one is a retention old.
func TestPeriodicRevisionUnchanged(t *testing.T) {
	h := newHarness(t, compactor.ModePeriodic, 5*time.Second)
	h.increment.Store(false)
	h.rev.Store(101)
	h.start()
	h.idle(9)
	h.answer(h.expectCompaction(101), nil)
	h.idle(50)
	h.rev.Store(200)
	h.idle(11) // until every sample of the window is 200
	h.answer(h.expectCompaction(200), nil)
}

// TestPeriodicPaused: a follower keeps sampling but never compacts; once
// leader it compacts at once at the revision a retention ago.
func TestPeriodicPaused(t *testing.T) {
	h := newHarness(t, compactor.ModePeriodic, time.Hour)
	h.leader.Store(false)
	h.start()
	h.idle(3 * 11)
	h.leader.Store(true)
	// etcd's TestPeriodicPause: "compact the revision from hour 2:06".
	h.answer(h.expectCompaction(1+2*11+1), nil)
}

// TestPeriodicFailureRetried: a failed compaction is tried again one
// sampling interval later, at the window's oldest revision, which moves
// on as the window slides (etcd: "failure? update revs, and retry").
func TestPeriodicFailureRetried(t *testing.T) {
	h := newHarness(t, compactor.ModePeriodic, 5*time.Second)
	h.start()
	h.idle(9)
	h.answer(h.expectCompaction(1), rpctypes.ErrGRPCNoLeader)
	h.answer(h.expectCompaction(1), errors.New("etcdserver: request timed out"))
	h.answer(h.expectCompaction(2), nil)
	h.idle(9)
	got := strings.Join(h.messages(), "\n")
	want := strings.Join([]string{
		"starting auto periodic compaction rev=1", "failed auto periodic compaction rev=1",
		"starting auto periodic compaction rev=1", "failed auto periodic compaction rev=1",
		"starting auto periodic compaction rev=2", "completed auto periodic compaction rev=2",
	}, "\n")
	if got != want {
		t.Fatalf("log:\n%s\nwant:\n%s", got, want)
	}
}

// TestPeriodicAlreadyCompacted: "required revision has been compacted"
// counts as success, so the next try is a whole interval later.
func TestPeriodicAlreadyCompacted(t *testing.T) {
	h := newHarness(t, compactor.ModePeriodic, 5*time.Second)
	h.start()
	h.idle(9)
	h.answer(h.expectCompaction(1), rpctypes.ErrGRPCCompacted)
	h.idle(9)
	h.answer(h.expectCompaction(10), nil)
	msgs := h.messages()
	if len(msgs) != 4 || msgs[1] != "completed auto periodic compaction rev=1" {
		t.Fatalf("log: %q", msgs)
	}
}

// TestPeriodicTimeout: a proposal never answered fails after the request
// timeout; a late answer to it is ignored.
func TestPeriodicTimeout(t *testing.T) {
	h := newHarness(t, compactor.ModePeriodic, 5*time.Second)
	h.cfg.RequestTimeout = 3 * time.Second
	h.start()
	h.idle(9)
	p := h.expectCompaction(1)
	h.clock.Advance(3 * time.Second)
	testkit.ExpectTapped[any](h.tap, wait) // the timeout
	msgs := h.messages()
	if len(msgs) != 2 || msgs[1] != "failed auto periodic compaction rev=1" {
		t.Fatalf("log: %q", msgs)
	}
	p.reply <- actors.Result{Resp: &pb.CompactionResponse{}} // too late: nobody listens
	h.answer(h.expectCompaction(1), nil)
}

// TestRestartStartsAfresh: after a crash the compactor samples from
// scratch and waits a whole retention again, as etcd after a restart;
// the timer of the failed instance does not fire into the new one.
func TestRestartStartsAfresh(t *testing.T) {
	h := newHarness(t, compactor.ModePeriodic, 5*time.Second)
	h.start()
	ev := h.kit.CaptureEvents()
	h.idle(5)
	h.rev.Store(1000)
	h.panicRev.Store(true)
	h.idle(1) // the tick whose sample panics
	ev.ExpectSupervisorEvent(wait)
	h.idle(9) // the new instance sampled 1001 when it started
	h.answer(h.expectCompaction(1001), nil)
}

// TestRevisionMode: every 5 minutes, compact at current − retention, when
// positive and not what was compacted last; failures retried next time.
func TestRevisionMode(t *testing.T) {
	h := newHarness(t, compactor.ModeRevision, 10) // --auto-compaction-retention=10
	h.increment.Store(false)
	h.rev.Store(5)
	h.start()
	h.idle(1) // 5 − 10 ≤ 0
	h.rev.Store(100)
	p := h.expectCompaction(90)
	if !h.clock.Now().Equal(time.Unix(1000, 0).Add(2 * compactor.RevisionInterval)) {
		t.Fatalf("compacted at %v, want two revision intervals after start", h.clock.Now())
	}
	h.answer(p, nil)
	h.idle(2) // the revision did not move
	h.rev.Store(200)
	h.answer(h.expectCompaction(190), errors.New("etcdserver: request timed out"))
	h.answer(h.expectCompaction(190), rpctypes.ErrGRPCCompacted) // counts as done
	h.idle(1)
	h.leader.Store(false)
	h.rev.Store(300)
	h.idle(3)
	h.leader.Store(true)
	p = h.expectCompaction(290)
	h.answer(p, nil)
	got := strings.Join(h.messages(), "\n")
	want := strings.Join([]string{
		"starting auto revision compaction rev=90", "completed auto revision compaction rev=90",
		"starting auto revision compaction rev=190", "failed auto revision compaction rev=190",
		"starting auto revision compaction rev=190", "completed auto revision compaction rev=190",
		"starting auto revision compaction rev=290", "completed auto revision compaction rev=290",
	}, "\n")
	if got != want {
		t.Fatalf("log:\n%s\nwant:\n%s", got, want)
	}
}

func TestParseRetention(t *testing.T) {
	for _, c := range []struct {
		mode, in string
		want     time.Duration
		err      string
	}{
		{"periodic", "", 0, ""},
		{"periodic", "0", 0, ""},
		{"periodic", "1", time.Hour, ""},
		{"periodic", "72", 72 * time.Hour, ""},
		{"periodic", "5m", 5 * time.Minute, ""},
		{"periodic", "2s", 2 * time.Second, ""},
		{"periodic", "1.5h", 90 * time.Minute, ""},
		{"revision", "10", 10, ""},
		{"revision", "1000", 1000, ""},
		{"revision", "5m", 5 * time.Minute, ""}, // etcd takes a duration here too
		{"periodic", "abc", 0, `error parsing CompactionRetention: time: invalid duration "abc"`},
		{"periodic", "-1", 0, `error parsing CompactionRetention: time: missing unit in duration "-1"`},
		{"", "1", 0, "--auto-compaction-mode is undefined"},
	} {
		got, err := compactor.ParseRetention(c.mode, c.in)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("ParseRetention(%q, %q) error %v, want %q", c.mode, c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseRetention(%q, %q) = %v, %v; want %v", c.mode, c.in, got, err, c.want)
		}
	}
}

func TestValidateMode(t *testing.T) {
	for mode, want := range map[string]string{
		"periodic": "", "revision": "",
		"":       "undefined auto-compaction-mode",
		"hourly": `unknown auto-compaction-mode "hourly"`,
	} {
		err := compactor.ValidateMode(mode)
		if (err == nil) != (want == "") || (err != nil && err.Error() != want) {
			t.Errorf("ValidateMode(%q) = %v, want %q", mode, err, want)
		}
	}
	if _, err := compactor.New(compactor.Config{Mode: "hourly"}); err == nil {
		t.Error("New accepted an unknown mode")
	}
}

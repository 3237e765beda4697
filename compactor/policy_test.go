package compactor_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/compactor"
	"github.com/metastore/metastore/testkit"
)

// setPolicy changes the running compactor's policy, waits until it has
// handled the change, and steps at the new policy's check interval.
func (h *harness) setPolicy(mode string, retention time.Duration) error {
	h.t.Helper()
	err, askErr := actors.Ask(context.Background(), h.kit.Root(), h.pid, func(r chan<- error) any {
		return &compactor.SetPolicy{Mode: mode, Retention: retention, Reply: r}
	})
	if askErr != nil {
		h.t.Fatal(askErr)
	}
	testkit.ExpectTapped[*compactor.SetPolicy](h.tap, wait)
	if err == nil {
		if mode == compactor.ModeRevision {
			h.interval = compactor.RevisionInterval
		} else {
			h.interval, _, _ = compactor.Intervals(retention)
		}
	}
	return err
}

// Off, then periodic 1h: the compactor starts as etcd starts one, at the
// change — its first compaction is an hour later, at the revision it
// sampled then. Turned off, it arms nothing and proposes nothing. A
// restart after a panic runs the policy set last, not the one it started
// with.
func TestSetPolicyOffToPeriodicAndBack(t *testing.T) {
	h := newHarness(t, compactor.ModePeriodic, 0)
	h.start()
	if err := h.setPolicy(compactor.ModePeriodic, 0); err != nil { // nothing changes
		t.Fatal(err)
	}
	if n := h.clock.Pending(); n != 0 {
		t.Fatalf("an off compactor armed %d timers", n)
	}
	h.clock.Advance(48 * time.Hour)

	changed := h.clock.Now()
	if err := h.setPolicy(compactor.ModePeriodic, time.Hour); err != nil {
		t.Fatal(err)
	}
	h.idle(9)
	p := h.expectCompaction(1)
	if at := h.clock.Now(); !at.Equal(changed.Add(time.Hour)) {
		t.Fatalf("first compaction at %v, want an hour after the change (%v)", at, changed.Add(time.Hour))
	}
	h.answer(p, nil)

	ev := h.kit.CaptureEvents()
	h.rev.Store(1000)
	h.panicRev.Store(true)
	h.idle(1) // the tick whose sample panics
	ev.ExpectSupervisorEvent(wait)
	h.idle(9) // the new instance sampled 1001 when it started: periodic 1h
	h.answer(h.expectCompaction(1001), nil)

	// Off while a compaction is in flight: its late answer is ignored.
	h.idle(9)
	p = h.expectCompaction(1010)
	if err := h.setPolicy(compactor.ModePeriodic, 0); err != nil {
		t.Fatal(err)
	}
	p.reply <- actors.Result{}
	if n := h.clock.Pending(); n != 0 {
		t.Fatalf("a compactor turned off left %d timers armed", n)
	}
	h.clock.Advance(48 * time.Hour)
	select {
	case p := <-h.proposals:
		t.Fatalf("a compactor turned off proposed a compaction at %d", p.rev)
	default:
	}

	want := []string{"auto-compaction-retention: 0s -> 1h0m0s", "auto-compaction-retention: 1h0m0s -> 0s"}
	if got := testkit.SettingChanges(h.logs); !slices.Equal(got, want) {
		t.Errorf("logged %q, want %q", got, want)
	}
}

// A new retention of a running periodic compactor with the same sampling
// interval keeps its samples: lowered (2h to 1h), it compacts at its next
// check at the sample an hour old; raised (1h to 3h), not before its
// window spans 3h — never at a revision sampled less than a retention
// ago.
func TestSetPolicyPeriodicRetentionKeepsTheWindow(t *testing.T) {
	h := newHarness(t, compactor.ModePeriodic, 2*time.Hour) // samples every 6 minutes
	h.start()
	start := h.clock.Now()
	sampledAt := func(rev int64) time.Time { return start.Add(time.Duration(rev-1) * 6 * time.Minute) }

	h.idle(15) // 1h30m: samples 1..16
	if err := h.setPolicy(compactor.ModePeriodic, time.Hour); err != nil {
		t.Fatal(err)
	}
	p := h.expectCompaction(6)
	if age := h.clock.Now().Sub(sampledAt(6)); age < time.Hour {
		t.Fatalf("compacted at a sample %v old, retention 1h", age)
	}
	h.answer(p, nil)

	if err := h.setPolicy(compactor.ModePeriodic, 3*time.Hour); err != nil {
		t.Fatal(err)
	}
	h.idle(19)
	p = h.expectCompaction(7)
	if age := h.clock.Now().Sub(sampledAt(7)); age != 3*time.Hour {
		t.Fatalf("compacted at a sample %v old, want the one 3h old", age)
	}
	h.answer(p, nil)
}

// Changes that cannot keep what the compactor holds start it afresh: a
// periodic retention with another sampling interval (5s to 10s) waits the
// whole new retention; a new mode starts that mode. A revision retention
// is taken at the next check. Nonsense is refused with nothing changed.
func TestSetPolicyAfresh(t *testing.T) {
	h := newHarness(t, compactor.ModePeriodic, 5*time.Second)
	h.start()
	h.idle(5)
	for _, bad := range []compactor.SetPolicy{{Mode: "hourly", Retention: time.Hour}, {Mode: compactor.ModePeriodic, Retention: -time.Second}, {Retention: time.Hour}} {
		if err := h.setPolicy(bad.Mode, bad.Retention); err == nil {
			t.Fatalf("SetPolicy accepted %q %v", bad.Mode, bad.Retention)
		}
	}
	h.idle(4)
	h.answer(h.expectCompaction(1), nil) // as if nothing had been asked

	h.rev.Store(100)
	changed := h.clock.Now()
	if err := h.setPolicy(compactor.ModePeriodic, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	h.idle(9)
	h.answer(h.expectCompaction(101), nil) // sampled at the change
	if at := h.clock.Now(); !at.Equal(changed.Add(10 * time.Second)) {
		t.Fatalf("compacted at %v, want 10s after the change", at)
	}

	h.increment.Store(false)
	h.rev.Store(500)
	if err := h.setPolicy(compactor.ModeRevision, 100); err != nil {
		t.Fatal(err)
	}
	h.answer(h.expectCompaction(400), nil)
	if err := h.setPolicy(compactor.ModeRevision, 50); err != nil {
		t.Fatal(err)
	}
	h.answer(h.expectCompaction(450), nil)

	want := []string{
		"auto-compaction-retention: 5s -> 10s",
		"auto-compaction-mode: periodic -> revision", "auto-compaction-retention: 10s -> 100",
		"auto-compaction-retention: 100 -> 50",
	}
	if got := testkit.SettingChanges(h.logs); !slices.Equal(got, want) {
		t.Errorf("logged %q, want %q", got, want)
	}
}

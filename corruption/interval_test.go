package corruption

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
)

// Changing --corrupt-check-time while running: from off, checks start an
// interval after the change; a new interval replaces the old ticks; 0
// stops them. A restarted checker keeps the interval set last, and a
// negative one is refused with nothing changed.
func TestSetIntervalStartsChangesAndStopsChecks(t *testing.T) {
	kit := testkit.New(t)
	clock := testkit.NewFakeClock(time.Unix(0, 0))
	core, logs := observer.New(zap.InfoLevel)
	checks := make(chan struct{}, 10)
	cfg := Config{
		Hashes: Hashes{Self: 1,
			Local: func(int64) (storeactor.KVHash, error) {
				return storeactor.KVHash{Hash: 7, Revision: 10, CurrentRevision: 10}, nil
			},
			Peers: func(context.Context, int64) []PeerHash { checks <- struct{}{}; return nil }, // once a check
		},
		Timeout: time.Second, Leader: func() bool { return true },
		LinearizableRead: func(context.Context) error { return nil },
		Alarm:            func(id uint64) { t.Errorf("alarm raised for %x", id) },
		Clock:            clock, Logger: zap.New(core),
	}
	var crashNext atomic.Bool
	crashOnce := func(m any) bool { _, ok := m.(tick); return ok && crashNext.CompareAndSwap(true, false) }
	// The tap records checks, and each Started: an incarnation has armed
	// its ticker once it handled its Started.
	tap := kit.NewTap(testkit.WithFilter(func(m any) bool {
		switch m.(type) {
		case checked, *actor.Started:
			return true
		}
		return false
	}))
	pid := kit.Spawn(testkit.PanicOn(tap.Props(New(cfg)), crashOnce))
	testkit.ExpectTapped[*actor.Started](tap, wait)
	set := func(d time.Duration) error {
		t.Helper()
		err, askErr := actors.Ask(context.Background(), kit.Root(), pid, func(r chan<- error) any { return &SetInterval{Interval: d, Reply: r} })
		if askErr != nil {
			t.Fatal(askErr)
		}
		return err
	}
	// checked advances the clock by d, which must start one check, and
	// waits until it has ended.
	checked := func(d time.Duration) {
		t.Helper()
		clock.Advance(d)
		select {
		case <-checks:
		case <-time.After(wait):
			t.Fatalf("no check %v later", d)
		}
		testkit.ExpectTapped[checked](tap, wait)
	}
	pending := func(want int) {
		t.Helper()
		if n := clock.Pending(); n != want {
			t.Fatalf("%d timers armed, want %d", n, want)
		}
	}

	if err := set(0); err != nil { // off already: nothing changes
		t.Fatal(err)
	}
	pending(0)
	if err := set(time.Minute); err != nil {
		t.Fatal(err)
	}
	clock.Advance(59 * time.Second)
	checked(time.Second)
	if err := set(5 * time.Minute); err != nil {
		t.Fatal(err)
	}
	pending(1) // the 1m ticks are stopped
	clock.Advance(4 * time.Minute)
	checked(time.Minute)
	if err := set(-time.Second); err == nil {
		t.Fatal("a negative interval was accepted")
	}

	// The next tick panics the actor; the new instance ticks every 5m.
	events := kit.CaptureEvents()
	crashNext.Store(true)
	clock.Advance(5 * time.Minute)
	events.ExpectSupervisorEvent(wait)
	testkit.ExpectTapped[*actor.Started](tap, wait) // the new instance armed its ticker
	pending(1)
	checked(5 * time.Minute)

	if err := set(0); err != nil {
		t.Fatal(err)
	}
	pending(0)
	if len(checks) != 0 {
		t.Fatalf("%d checks ran beyond those expected", len(checks))
	}

	want := []string{"corrupt-check-time: 0s -> 1m0s", "corrupt-check-time: 1m0s -> 5m0s", "corrupt-check-time: 5m0s -> 0s"}
	if got := testkit.SettingChanges(logs); !slices.Equal(got, want) {
		t.Errorf("logged %q, want %q", got, want)
	}
}

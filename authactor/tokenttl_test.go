package authactor_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/authactor"
	"github.com/metastore/metastore/testkit"
)

func setTTL(t *testing.T, kit *testkit.Kit, pid *actor.PID, ttl time.Duration) error {
	t.Helper()
	err, askErr := actors.Ask(context.Background(), kit.Root(), pid, func(r chan<- error) any {
		return &authactor.SetTTL{TTL: ttl, Reply: r}
	})
	if askErr != nil {
		t.Fatal(askErr)
	}
	return err
}

// Changing --auth-token-ttl while running: a token issued after the
// change lives by the new TTL; one issued before keeps its deadline until
// its next use, which extends it by the new TTL. The change is logged and
// counted once, survives a restart of the actor, and nonsense is refused
// with nothing changed.
func TestSetTTLAppliesToNewTokensAndNextUses(t *testing.T) {
	kit := testkit.New(t)
	clock := testkit.NewFakeClock(time.Unix(0, 0))
	core, logs := observer.New(zapcore.InfoLevel)
	props, view := authactor.NewSimpleTokens(authactor.TokensConfig{TTL: 10 * time.Second, Clock: clock, Logger: zap.New(core)})
	restartOn := func(m any) bool {
		a, ok := m.(*authactor.Apply)
		return ok && len(a.Ops) == 1 && a.Ops[0].Token == "crash.0"
	}
	pid := kit.Spawn(testkit.PanicOn(props, restartOn))
	reg := testkit.Registry(t)
	before, _ := testkit.Gather(t, reg).Value("metastore_config_reloads_total", "setting", "auth-token-ttl")

	apply(t, kit, pid, assign("old.1", "alice"))
	if err := setTTL(t, kit, pid, time.Minute); err != nil {
		t.Fatal(err)
	}
	apply(t, kit, pid, assign("new.2", "bob"))
	clock.Advance(11 * time.Second)
	if _, ok := view.User("old.1"); ok {
		t.Error("a token issued before the change outlived the TTL it was issued with")
	}
	if _, ok := view.User("new.2"); !ok {
		t.Fatal("a token issued after the change to 1m expired after 11s")
	}
	clock.Advance(time.Minute + time.Second)
	if _, ok := view.User("new.2"); ok {
		t.Fatal("a token idle for longer than the new TTL is valid")
	}

	// Lowering it: the next use of a token gives it the new TTL.
	apply(t, kit, pid, assign("c.3", "carol"))
	if err := setTTL(t, kit, pid, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, ok := view.User("c.3"); !ok {
		t.Fatal("lowering the TTL ended a token used within it")
	}
	clock.Advance(6 * time.Second)
	if _, ok := view.User("c.3"); ok {
		t.Fatal("a token used after the TTL was lowered to 5s is valid 6s after")
	}

	// Refused: nothing changes. The same TTL again: no change to log.
	if err := setTTL(t, kit, pid, -time.Second); err == nil {
		t.Fatal("a negative TTL was accepted")
	}
	if err := setTTL(t, kit, pid, 5*time.Second); err != nil {
		t.Fatal(err)
	}

	// A restarted actor keeps the TTL it was told last.
	events := kit.CaptureEvents()
	kit.Root().Send(pid, &authactor.Apply{Ops: []authactor.TokenOp{assign("crash.0", "x")}})
	events.ExpectSupervisorEvent(5 * time.Second)
	apply(t, kit, pid, assign("d.4", "dave"))
	clock.Advance(6 * time.Second)
	if _, ok := view.User("d.4"); ok {
		t.Fatal("after a restart, a new token got the start's TTL instead of the one set later")
	}

	want := []string{"auth-token-ttl: 10s -> 1m0s", "auth-token-ttl: 1m0s -> 5s"}
	if got := testkit.SettingChanges(logs); !slices.Equal(got, want) {
		t.Errorf("logged %q, want %q", got, want)
	}
	after := testkit.Gather(t, reg).Must(t, "metastore_config_reloads_total", "setting", "auth-token-ttl")
	if after-before != 2 {
		t.Errorf("metastore_config_reloads_total{auth-token-ttl} went up by %v, want 2", after-before)
	}
}

package authactor_test

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/authactor"
	"github.com/metastore/metastore/testkit"
)

// apply sends token ops and waits until they are in effect.
func apply(t *testing.T, kit *testkit.Kit, pid *actor.PID, ops ...authactor.TokenOp) {
	t.Helper()
	_, err := actors.Ask(context.Background(), kit.Root(), pid, func(r chan<- bool) any {
		return &authactor.Apply{Ops: ops, Then: func() { r <- true }}
	})
	if err != nil {
		t.Fatal(err)
	}
}

func assign(token, user string) authactor.TokenOp {
	return authactor.TokenOp{Kind: authactor.AssignToken, Token: token, User: user}
}

// Simple tokens: etcd's shape, valid while used within the TTL, dropped
// for a user on request, and swept once idle past it.
func TestSimpleTokensExpireWhenIdle(t *testing.T) {
	kit := testkit.New(t)
	clock := testkit.NewFakeClock(time.Unix(0, 0))
	props, view := authactor.NewSimpleTokens(authactor.TokensConfig{TTL: 10 * time.Second, Clock: clock})
	pid := kit.Spawn(props)
	clock.WaitPending(1, 5*time.Second)

	prefix := authactor.NewTokenPrefix()
	if !regexp.MustCompile(`^[a-zA-Z]{16}$`).MatchString(prefix) {
		t.Fatalf("token prefix %q is not etcd's simple-token shape", prefix)
	}
	tok := prefix + ".7"
	apply(t, kit, pid, assign(tok, "alice"))
	if u, ok := view.User(tok); !ok || u != "alice" {
		t.Fatalf("fresh token: %q %v", u, ok)
	}
	// Each use extends it by the TTL.
	for i := 0; i < 3; i++ {
		clock.Advance(8 * time.Second)
		if _, ok := view.User(tok); !ok {
			t.Fatalf("token expired while in use (round %d)", i)
		}
	}
	clock.Advance(11 * time.Second)
	if _, ok := view.User(tok); ok {
		t.Fatal("token valid after the TTL without use")
	}
	if _, ok := view.User("nope.1"); ok {
		t.Fatal("unknown token accepted")
	}

	// Dropping a user drops only that user's tokens, in op order: a token
	// assigned after the drop in the same batch stays.
	apply(t, kit, pid, assign("a.1", "alice"), assign("b.2", "bob"),
		authactor.TokenOp{Kind: authactor.DropUser, User: "alice"}, assign("a.3", "alice"))
	if _, ok := view.User("a.1"); ok {
		t.Fatal("alice's token survived her invalidation")
	}
	if u, ok := view.User("b.2"); !ok || u != "bob" {
		t.Fatal("bob's token was dropped")
	}
	if u, ok := view.User("a.3"); !ok || u != "alice" {
		t.Fatal("alice's later token was dropped")
	}
	// Auth disabled: every token ends.
	apply(t, kit, pid, authactor.TokenOp{Kind: authactor.DropAll})
	if _, ok := view.User("b.2"); ok {
		t.Fatal("a token survived DropAll")
	}
}

// A failure while an Apply is handled still answers the batch's clients,
// once, and leaves no token valid that the batch ended: here the batch
// that drops alice (deleted) fails before its ops run, so every token of
// the users it names is dropped; bob's stay. The actor is restarted and
// goes on.
func TestFailedApplyAnswersOnceAndDropsTokens(t *testing.T) {
	kit := testkit.New(t)
	events := kit.CaptureEvents()
	clock := testkit.NewFakeClock(time.Unix(0, 0))
	props, view := authactor.NewSimpleTokens(authactor.TokensConfig{TTL: time.Minute, Clock: clock})
	dropsAlice := func(m any) bool {
		a, ok := m.(*authactor.Apply)
		return ok && len(a.Ops) > 0 && a.Ops[0].Kind == authactor.DropUser && a.Ops[0].User == "alice"
	}
	pid := kit.Spawn(testkit.PanicOn(props, dropsAlice))
	apply(t, kit, pid, assign("a.1", "alice"), assign("b.2", "bob"))

	answered := make(chan struct{}, 2)
	kit.Root().Send(pid, &authactor.Apply{
		Ops:  []authactor.TokenOp{{Kind: authactor.DropUser, User: "alice"}, assign("a.3", "alice")},
		Then: func() { answered <- struct{}{} },
	})
	select {
	case <-answered:
	case <-time.After(5 * time.Second):
		t.Fatal("the failed batch's clients were never answered")
	}
	ev := events.ExpectSupervisorEvent(5 * time.Second)
	if _, injected := ev.Reason.(testkit.InjectedPanic); !injected {
		t.Fatalf("supervisor saw %v, want the injected panic", ev.Reason)
	}
	for _, tok := range []string{"a.1", "a.3"} {
		if _, ok := view.User(tok); ok {
			t.Errorf("alice's token %s valid after the batch that dropped her failed", tok)
		}
	}
	if u, ok := view.User("b.2"); !ok || u != "bob" {
		t.Errorf("bob's token, which the failed batch did not name, was dropped")
	}

	apply(t, kit, pid, assign("c.4", "carol")) // handled after the restart
	if len(answered) != 0 {
		t.Fatal("the failed batch's clients were answered twice")
	}
	if u, ok := view.User("c.4"); !ok || u != "carol" {
		t.Fatal("a batch after the failure did not take effect")
	}
}

// A failure once the batch's table is in effect (here in Then itself)
// keeps the batch's changes and does not answer its clients again.
func TestFailedApplyAfterItsChangesKeepsThem(t *testing.T) {
	kit := testkit.New(t)
	events := kit.CaptureEvents()
	props, view := authactor.NewSimpleTokens(authactor.TokensConfig{TTL: time.Minute, Clock: testkit.NewFakeClock(time.Unix(0, 0))})
	pid := kit.Spawn(props)
	apply(t, kit, pid, assign("a.1", "alice"))

	calls := make(chan struct{}, 2)
	kit.Root().Send(pid, &authactor.Apply{
		Ops:  []authactor.TokenOp{{Kind: authactor.DropUser, User: "alice"}, assign("a.2", "alice")},
		Then: func() { calls <- struct{}{}; panic("answering failed") },
	})
	events.ExpectSupervisorEvent(5 * time.Second)
	apply(t, kit, pid, assign("b.3", "bob"))
	if len(calls) != 1 {
		t.Fatalf("Then ran %d times, want once", len(calls))
	}
	if _, ok := view.User("a.1"); ok {
		t.Error("alice's dropped token is valid")
	}
	if u, ok := view.User("a.2"); !ok || u != "alice" {
		t.Error("the token the batch assigned was dropped, though its changes were in effect")
	}
}

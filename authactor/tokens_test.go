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

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

func issue(t *testing.T, kit *testkit.Kit, pid *actor.PID, user string) string {
	t.Helper()
	tok, err := actors.Ask(context.Background(), kit.Root(), pid, func(r chan<- string) any {
		return &authactor.Issue{User: user, Reply: r}
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Simple tokens: etcd's shape, valid while used within the TTL, dropped
// for a user on request, and swept once idle past it.
func TestSimpleTokensExpireWhenIdle(t *testing.T) {
	kit := testkit.New(t)
	clock := testkit.NewFakeClock(time.Unix(0, 0))
	props, view := authactor.NewSimpleTokens(authactor.TokensConfig{TTL: 10 * time.Second, Clock: clock})
	pid := kit.Spawn(props)
	clock.WaitPending(1, 5*time.Second)

	tok := issue(t, kit, pid, "alice")
	if !regexp.MustCompile(`^[a-zA-Z]{16}\.[0-9]+$`).MatchString(tok) {
		t.Fatalf("token %q is not etcd's simple-token shape", tok)
	}
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

	// Invalidating a user drops only that user's tokens.
	a, b := issue(t, kit, pid, "alice"), issue(t, kit, pid, "bob")
	kit.Root().Send(pid, &authactor.InvalidateUser{User: "alice"})
	issue(t, kit, pid, "carol") // a round trip: the invalidation is handled
	if _, ok := view.User(a); ok {
		t.Fatal("alice's token survived her invalidation")
	}
	if u, ok := view.User(b); !ok || u != "bob" {
		t.Fatal("bob's token was dropped")
	}
}

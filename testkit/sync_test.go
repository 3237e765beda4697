package testkit_test

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/metastore/metastore/testkit"
)

type tally struct{ started, n int }

func (a *tally) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		a.started++
	case inc:
		a.n++
	}
}

func TestSynchronousActorHasRunWhenSendReturns(t *testing.T) {
	kit := testkit.New(t)
	a := &tally{}
	pid := kit.Spawn(testkit.Synchronous(actor.PropsFromProducer(func() actor.Actor { return a })))
	if a.started != 1 {
		t.Fatalf("Started not handled during Spawn")
	}
	for i := 1; i <= 100; i++ {
		kit.Root().Send(pid, inc{})
		// No waiting, and no data race: Receive ran on this goroutine.
		if a.n != i {
			t.Fatalf("after %d sends n = %d", i, a.n)
		}
	}
}

package testkit_test

import (
	"log/slog"
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/metastore/metastore/testkit"
)

func TestNewGivesEachTestItsOwnSystemAndCleansUp(t *testing.T) {
	stopped := make(chan struct{})
	var first, second *actor.ActorSystem
	t.Run("inner", func(t *testing.T) {
		kit := testkit.New(t)
		first = kit.System()
		kit.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
			if _, ok := ctx.Message().(*actor.Stopped); ok {
				close(stopped)
			}
		}))
	})
	// The inner test's cleanup must have stopped the actor, and waited
	// for it, before t.Run returned.
	select {
	case <-stopped:
	default:
		t.Fatal("cleanup did not stop the spawned actor")
	}
	if !first.IsStopped() {
		t.Fatal("cleanup did not shut the system down")
	}
	second = testkit.New(t).System()
	if second == first || second.ID == first.ID {
		t.Fatal("New reused an actor system")
	}
}

func TestWithLogsRoutesToTestLog(t *testing.T) {
	quiet := &recordingTB{TB: t}
	testkit.New(quiet)
	if quiet.logged("actor system started") {
		t.Fatal("logs should be discarded by default")
	}
	loud := &recordingTB{TB: t}
	testkit.New(loud, testkit.WithLogs(slog.LevelInfo))
	if !loud.logged("actor system started") {
		t.Fatalf("WithLogs: system start not logged; logs: %q", loud.logs)
	}
}

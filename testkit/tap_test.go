package testkit_test

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/metastore/metastore/testkit"
)

type inc struct{}

func counterProps(report *actor.PID) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		n := 0
		return actor.ReceiveFunc(func(ctx actor.Context) {
			switch ctx.Message().(type) {
			case inc:
				n++
				if report != nil {
					ctx.Send(report, n)
				}
			}
		})
	})
}

func TestTapSeesWhatARealActorHandles(t *testing.T) {
	kit := testkit.New(t)
	p := kit.NewProbe()
	tap := kit.NewTap()
	pid := kit.Spawn(tap.Props(counterProps(p.PID())))

	p.Request(pid, inc{}) // from the probe, so the tap records it as sender
	kit.Root().Send(pid, inc{})
	// By default only user messages are tapped: not Started.
	testkit.ExpectTapped[inc](tap, wait)
	if !p.PID().Equal(tap.LastSender()) {
		t.Fatalf("LastSender = %v, want the probe", tap.LastSender())
	}
	testkit.ExpectTapped[inc](tap, wait)
	tap.ExpectNoMsg(20 * time.Millisecond)
	// The real actor really ran.
	testkit.Expect[int](p, wait)
	if got := testkit.Expect[int](p, wait); got != 2 {
		t.Fatalf("count = %d", got)
	}
}

func TestTapWithSystemMessages(t *testing.T) {
	kit := testkit.New(t)
	tap := kit.NewTap(testkit.WithSystemMessages())
	pid := kit.Spawn(tap.Props(counterProps(nil)))
	testkit.ExpectTapped[*actor.Started](tap, wait)
	kit.Stop(pid)
	testkit.ExpectTapped[*actor.Stopping](tap, wait)
	testkit.ExpectTapped[*actor.Stopped](tap, wait)

	only := kit.NewTap(testkit.WithFilter(func(m any) bool { _, ok := m.(*actor.Stopped); return ok }))
	pid = kit.Spawn(only.Props(counterProps(nil)))
	kit.Root().Send(pid, inc{})
	kit.Stop(pid)
	testkit.ExpectTapped[*actor.Stopped](only, wait)
	only.ExpectNoMsg(10 * time.Millisecond)
}

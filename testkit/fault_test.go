package testkit_test

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/metastore/metastore/testkit"
)

// child counts "inc" and answers "n?" with the count.
func child() actor.Actor {
	n := 0
	return actor.ReceiveFunc(func(ctx actor.Context) {
		switch ctx.Message() {
		case "inc":
			n++
		case "n?":
			ctx.Respond(n)
		}
	})
}

func TestPanicOnRestartsChildUnderOneForOne(t *testing.T) {
	kit := testkit.New(t)
	ev := kit.CaptureEvents()
	p := kit.NewProbe()
	tap := kit.NewTap(testkit.WithSystemMessages())

	// Tap first, so it is outside PanicOn and records the fatal message.
	childProps := testkit.PanicOn(tap.Props(actor.PropsFromProducer(child)),
		func(m any) bool { return m == "boom" })
	strategy := actor.NewOneForOneStrategy(3, time.Second, actor.DefaultDecider)
	kit.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actor.Started); ok {
			ctx.Send(p.PID(), ctx.Spawn(childProps))
		}
	}, actor.WithSupervisor(strategy)))
	pid := testkit.Expect[*actor.PID](p, wait)

	p.Request(pid, "inc")
	p.Request(pid, "boom")
	p.Request(pid, "n?")

	testkit.ExpectTapped[*actor.Started](tap, wait)
	if m := testkit.ExpectTapped[string](tap, wait); m != "inc" {
		t.Fatalf("tapped %q", m)
	}
	if m := testkit.ExpectTapped[string](tap, wait); m != "boom" {
		t.Fatalf("tapped %q", m)
	}
	testkit.ExpectTapped[*actor.Restarting](tap, wait)
	testkit.ExpectTapped[*actor.Started](tap, wait)
	testkit.ExpectTapped[string](tap, wait) // "n?"

	se := ev.ExpectSupervisorEvent(wait)
	ip, ok := se.Reason.(testkit.InjectedPanic)
	if !ok || ip.Message != "boom" || !se.Child.Equal(pid) || se.Directive != actor.RestartDirective {
		t.Fatalf("supervisor event = %+v", se)
	}
	// The restarted child is a fresh instance and keeps serving.
	if n := testkit.Expect[int](p, wait); n != 0 {
		t.Fatalf("count after restart = %d, want 0", n)
	}
	p.Request(pid, "inc")
	p.Request(pid, "n?")
	if n := testkit.Expect[int](p, wait); n != 1 {
		t.Fatalf("count = %d, want 1", n)
	}
	ev.ExpectNoSupervisorEvent(0)
}

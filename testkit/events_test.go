package testkit_test

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/metastore/metastore/testkit"
)

func TestCaptureDeadLetters(t *testing.T) {
	kit := testkit.New(t)
	ev := kit.CaptureEvents()
	p := kit.NewProbe()
	pid := kit.Spawn(actor.PropsFromProducer(echo))
	kit.Stop(pid)
	ev.ExpectNoDeadLetter(10 * time.Millisecond)

	p.Request(pid, "anyone there?")
	dl := ev.ExpectDeadLetter(wait)
	if dl.Message != "anyone there?" || !dl.PID.Equal(pid) || !p.PID().Equal(dl.Sender) {
		t.Fatalf("dead letter = %+v", dl)
	}
	// The system tells a sender its request went nowhere.
	testkit.Expect[*actor.DeadLetterResponse](p, wait)
	if n := ev.DeadLetters(); n != 1 {
		t.Fatalf("DeadLetters() = %d", n)
	}
	if n := ev.SupervisorEvents(); n != 0 {
		t.Fatalf("SupervisorEvents() = %d", n)
	}
	ev.ExpectNoSupervisorEvent(0)
}

func TestCaptureSupervisorEvents(t *testing.T) {
	kit := testkit.New(t)
	ev := kit.CaptureEvents()
	pid := kit.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if ctx.Message() == "crash" {
			panic("crashed")
		}
	}))
	kit.Root().Send(pid, "crash")
	se := ev.ExpectSupervisorEvent(wait)
	if se.Reason != "crashed" || !se.Child.Equal(pid) || se.Directive != actor.RestartDirective {
		t.Fatalf("supervisor event = %+v", se)
	}
	if msg := failure(t, func(tb testing.TB) {
		testkit.New(tb).CaptureEvents().ExpectSupervisorEvent(10 * time.Millisecond)
	}); msg == "" {
		t.Fatal("ExpectSupervisorEvent did not fail")
	}
}

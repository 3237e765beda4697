package testkit_test

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/metastore/metastore/testkit"
)

func TestProbeRequestSeesResponse(t *testing.T) {
	kit := testkit.New(t)
	p := kit.NewProbe()
	pid := kit.Spawn(actor.PropsFromProducer(echo))

	p.Request(pid, "ping")
	if got := testkit.Expect[string](p, wait); got != "ping" {
		t.Fatalf("got %q", got)
	}
	// Respond, like Send, carries no sender.
	if p.LastSender() != nil {
		t.Fatalf("LastSender = %v, want nil", p.LastSender())
	}
	// Send carries no sender, so echo's Respond is dead-lettered.
	p.Send(pid, "lost")
	p.ExpectNoMsg(20 * time.Millisecond)
}

func TestProbeReplyGoesToLastSender(t *testing.T) {
	kit := testkit.New(t)
	p := kit.NewProbe()

	// The code under test asks the probe, which stands in for a
	// dependency, and waits for the answer.
	f := kit.Root().RequestFuture(p.PID(), "question", wait)
	if got := testkit.Expect[string](p, wait); got != "question" {
		t.Fatalf("got %q", got)
	}
	p.Reply("answer")
	res, err := f.Result()
	if err != nil || res != "answer" {
		t.Fatalf("future = %v, %v", res, err)
	}

	// An actor that asks the probe gets the reply with the probe as
	// sender, so it can answer in turn.
	asker := kit.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.PID:
			ctx.Request(m, "hello")
		case string:
			ctx.Respond("thanks for " + m)
		}
	}))
	kit.Root().Send(asker, p.PID())
	testkit.Expect[string](p, wait)
	if !asker.Equal(p.LastSender()) {
		t.Fatalf("LastSender = %v, want %v", p.LastSender(), asker)
	}
	p.Reply("answer")
	if got := testkit.Expect[string](p, wait); got != "thanks for answer" {
		t.Fatalf("got %q", got)
	}
}

func TestProbeFailsTheTest(t *testing.T) {
	cases := map[string]func(tb testing.TB){
		"timeout": func(tb testing.TB) {
			testkit.Expect[string](testkit.New(tb).NewProbe(), 10*time.Millisecond)
		},
		"wrong type": func(tb testing.TB) {
			p := testkit.New(tb).NewProbe()
			p.Send(p.PID(), "text")
			testkit.Expect[int](p, wait)
		},
		"unexpected message": func(tb testing.TB) {
			p := testkit.New(tb).NewProbe()
			p.Send(p.PID(), "text")
			p.ExpectNoMsg(time.Second)
		},
		"reply without sender": func(tb testing.TB) {
			p := testkit.New(tb).NewProbe()
			p.Send(p.PID(), "text")
			testkit.Expect[string](p, wait)
			p.Reply("to nobody")
		},
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			if msg := failure(t, f); msg == "" {
				t.Fatal("did not fail")
			} else {
				t.Log(msg)
			}
		})
	}
	if msg := failure(t, func(tb testing.TB) {
		p := testkit.New(tb).NewProbe()
		p.Send(p.PID(), "text")
		testkit.Expect[any](p, wait)
		p.ExpectNoMsg(10 * time.Millisecond)
	}); msg != "" {
		t.Fatalf("passing case failed: %s", msg)
	}
}

func TestProbeWatch(t *testing.T) {
	kit := testkit.New(t)
	p := kit.NewProbe()
	pid := kit.Spawn(actor.PropsFromProducer(echo))

	p.Watch(pid)
	kit.Root().Stop(pid)
	p.ExpectTerminated(pid, wait)

	// Watching an actor that is already gone still yields Terminated.
	p.Watch(pid)
	if got := p.ExpectTerminated(pid, wait); got.Why != actor.TerminatedReason_NotFound {
		t.Fatalf("Why = %v", got.Why)
	}

	if msg := failure(t, func(tb testing.TB) {
		kit := testkit.New(tb)
		p := kit.NewProbe()
		other := kit.Spawn(actor.PropsFromProducer(echo))
		p.Watch(other)
		p.ExpectTerminated(other, 20*time.Millisecond) // nobody stops it
	}); msg == "" {
		t.Fatal("ExpectTerminated did not fail")
	}
}

package testkit

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Events captures the system's *actor.SupervisorEvent (a supervisor
// applied a directive to a failed child) and *actor.DeadLetterEvent (a
// message reached no actor). They are how failures show up at all:
// protoactor recovers a panic, logs at Info and carries on, so a test that
// wants "nothing failed" must look here.
//
// EventStream handlers run on the publisher's goroutine (an actor or the
// sender of a dead letter), so capturing only appends to a queue.
type Events struct {
	tb         testing.TB
	supervisor *queue[*actor.SupervisorEvent]
	dead       *queue[*actor.DeadLetterEvent]
	nSup       atomic.Int64
	nDead      atomic.Int64
}

// CaptureEvents subscribes to the EventStream until the test ends. Only
// events published after the call are captured.
//
// Dead letters include system messages, e.g. the Stop and Watch of
// stopping an actor twice. A Request whose target is gone also makes the
// system send *actor.DeadLetterResponse back to the sender.
func (k *Kit) CaptureEvents() *Events {
	e := &Events{
		tb:         k.tb,
		supervisor: newQueue[*actor.SupervisorEvent](),
		dead:       newQueue[*actor.DeadLetterEvent](),
	}
	sub := k.system.EventStream.Subscribe(func(evt any) {
		switch ev := evt.(type) {
		case *actor.SupervisorEvent:
			e.nSup.Add(1)
			e.supervisor.push(ev)
		case *actor.DeadLetterEvent:
			e.nDead.Add(1)
			e.dead.push(ev)
		}
	})
	k.tb.Cleanup(func() { k.system.EventStream.Unsubscribe(sub) })
	return e
}

// ExpectSupervisorEvent takes the next supervisor event, waiting up to
// timeout, or fails the test.
func (e *Events) ExpectSupervisorEvent(timeout time.Duration) *actor.SupervisorEvent {
	e.tb.Helper()
	ev, ok := e.supervisor.pop(timeout)
	if !ok {
		e.tb.Fatalf("testkit: no supervisor event within %v", timeout)
	}
	return ev
}

// ExpectDeadLetter takes the next dead letter, waiting up to timeout, or
// fails the test.
func (e *Events) ExpectDeadLetter(timeout time.Duration) *actor.DeadLetterEvent {
	e.tb.Helper()
	ev, ok := e.dead.pop(timeout)
	if !ok {
		e.tb.Fatalf("testkit: no dead letter within %v", timeout)
	}
	return ev
}

// ExpectNoSupervisorEvent fails the test if a supervisor event is
// captured, or arrives within d.
func (e *Events) ExpectNoSupervisorEvent(d time.Duration) {
	e.tb.Helper()
	if ev, ok := e.supervisor.pop(d); ok {
		e.tb.Fatalf("testkit: unexpected supervisor event: %s %v: %v", ev.Child, ev.Directive, ev.Reason)
	}
}

// ExpectNoDeadLetter fails the test if a dead letter is captured, or
// arrives within d.
func (e *Events) ExpectNoDeadLetter(d time.Duration) {
	e.tb.Helper()
	if ev, ok := e.dead.pop(d); ok {
		e.tb.Fatalf("testkit: unexpected dead letter to %s: %T %+v", ev.PID, ev.Message, ev.Message)
	}
}

// SupervisorEvents is how many supervisor events were captured in total,
// taken or not.
func (e *Events) SupervisorEvents() int { return int(e.nSup.Load()) }

// DeadLetters is how many dead letters were captured in total, taken or
// not.
func (e *Events) DeadLetters() int { return int(e.nDead.Load()) }

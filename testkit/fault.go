package testkit

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
)

// InjectedPanic is the value PanicOn panics with. It shows up as the
// Reason of the resulting *actor.SupervisorEvent, so a test can tell the
// failure it injected from a real bug.
type InjectedPanic struct {
	Message any // the message that triggered the panic
}

func (p InjectedPanic) Error() string {
	return fmt.Sprintf("testkit: injected panic on %T: %+v", p.Message, p.Message)
}

// PanicOn returns a copy of props whose actor panics, before its Receive
// sees the message, on every message when returns true for. when runs on
// the actor's goroutine for every message that reaches Receive, lifecycle
// messages included: returning true for *actor.Started makes the actor
// fail on every restart.
//
// The panic goes through protoactor's normal path: the message is
// dropped, the mailbox is suspended, and the parent's supervisor strategy
// decides (restart by default).
func PanicOn(props *actor.Props, when func(msg any) bool) *actor.Props {
	return props.Clone(actor.WithReceiverMiddleware(PanicMiddleware(when)))
}

// PanicMiddleware is PanicOn as a receive middleware.
func PanicMiddleware(when func(msg any) bool) actor.ReceiverMiddleware {
	return func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(ctx actor.ReceiverContext, env *actor.MessageEnvelope) {
			if when(env.Message) {
				panic(InjectedPanic{Message: env.Message})
			}
			next(ctx, env)
		}
	}
}

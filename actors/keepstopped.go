package actors

import (
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// KeepStopped is a Props option that keeps an actor that stopped from
// starting again. protoactor processes a Restart that was queued behind a
// Stop after the stop (handleRestart does not look at the actor's state)
// and starts a new incarnation: an actor crash-looping when it is stopped
// — at a node's shutdown — would run its start again on resources its
// owner is closing (pebble panics at Close on a read still in flight; a
// closed WAL makes the raft actor report a fatal error; a lessor would
// arm timers and the watch hub read the store after both are gone).
//
// The option adds a receiver middleware that remembers the PIDs whose
// Stopped it passed on (an incarnation keeps its PID; the same Props
// spawned again gets a new one) and drops every message, Started included,
// to such a PID: the incarnation after the stop never runs. Every
// subsystem actor's Props carry it.
func KeepStopped() actor.PropsOption {
	var stopped sync.Map // *actor.PID -> struct{}
	return actor.WithReceiverMiddleware(func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(ctx actor.ReceiverContext, env *actor.MessageEnvelope) {
			if _, gone := stopped.Load(ctx.Self()); gone {
				return
			}
			if _, ok := env.Message.(*actor.Stopped); ok {
				stopped.Store(ctx.Self(), struct{}{})
			}
			next(ctx, env)
		}
	})
}

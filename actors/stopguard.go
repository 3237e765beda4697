package actors

import (
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// StopGuard keeps an actor that stopped from starting again. protoactor
// processes a Restart that was queued behind a Stop after the stop
// (handleRestart does not look at the actor's state) and starts a new
// incarnation: an actor crash-looping when it is stopped — at a node's
// shutdown — would run its start again on resources its owner is closing
// (pebble panics at Close on a read still in flight; a closed WAL makes
// the raft actor report a fatal error). One StopGuard per Props, shared
// by the incarnations it produces: it remembers the PIDs that stopped (an
// incarnation keeps its PID; the same Props spawned again gets a new one).
type StopGuard struct{ stopped sync.Map }

// Stopped records that the actor of ctx stopped; call it on *actor.Stopped.
func (g *StopGuard) Stopped(ctx actor.Context) { g.stopped.Store(ctx.Self(), struct{}{}) }

// Revived reports whether the actor of ctx stopped before: call it on
// *actor.Started, and leave the incarnation inert when it is true.
func (g *StopGuard) Revived(ctx actor.Context) bool {
	_, gone := g.stopped.Load(ctx.Self())
	return gone
}

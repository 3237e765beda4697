package testkit

import "github.com/asynkron/protoactor-go/actor"

// Synchronous returns a copy of props whose actor runs on the goroutine
// of whoever sends to it (actor.NewSynchronizedDispatcher): when Spawn or
// Send returns, the actor has already handled Started or the message, so
// a test can check its effects with no waiting at all.
//
// This holds only while one goroutine at a time sends to the actor: if
// the actor is already running on another goroutine, the message is
// queued and handled there. Messages the actor sends to ordinary actors
// (such as a Probe) are still asynchronous, and so is a restart ordered
// by a parent that is not itself synchronous. Use it for unit tests of one actor's
// logic, not for tests of interaction and timing.
func Synchronous(props *actor.Props) *actor.Props {
	return props.Clone(actor.WithDispatcher(actor.NewSynchronizedDispatcher(300)))
}

package testkit

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Tap records what a real actor receives, without replacing it: a receive
// middleware copies each message (and its sender) to the tap after the
// actor's Receive has returned, or panicked. So once ExpectTapped returns
// a message, the actor has finished handling it, which makes a tap the
// natural way to wait for a real actor in a test.
//
// Receive middlewares added earlier run outside later ones. Apply
// tap.Props before PanicOn (PanicOn(tap.Props(p), ...)) so the tap also
// records the message that made the actor panic.
type Tap struct {
	in     *inbox
	filter func(msg any) bool
}

// TapOption configures NewTap.
type TapOption func(*Tap)

// WithSystemMessages makes the tap also record the lifecycle messages
// that pass through Receive (see IsSystemMessage).
func WithSystemMessages() TapOption {
	return func(t *Tap) { t.filter = func(any) bool { return true } }
}

// WithFilter makes the tap record only the messages keep returns true for.
// It runs on the actor's goroutine and must not block.
func WithFilter(keep func(msg any) bool) TapOption {
	return func(t *Tap) { t.filter = keep }
}

// IsSystemMessage reports whether msg is one of protoactor's own messages
// that reach Receive: *actor.Started, *actor.Restarting, *actor.Stopping,
// *actor.Stopped, *actor.Terminated, *actor.PoisonPill and the like.
// A tap skips them unless told otherwise.
func IsSystemMessage(msg any) bool {
	switch msg.(type) {
	case actor.SystemMessage, actor.AutoReceiveMessage, *actor.ReceiveTimeout:
		return true
	}
	return false
}

// NewTap makes a tap; by default it records only user messages.
func (k *Kit) NewTap(opts ...TapOption) *Tap {
	t := &Tap{
		in:     newInbox(k.tb, "tap"+k.system.ProcessRegistry.NextId()),
		filter: func(msg any) bool { return !IsSystemMessage(msg) },
	}
	for _, o := range opts {
		o(t)
	}
	return t
}

// Props returns a copy of props whose actor is tapped.
func (t *Tap) Props(props *actor.Props) *actor.Props {
	return props.Clone(actor.WithReceiverMiddleware(t.Middleware()))
}

// Middleware is the tap as a receive middleware, for props built inside
// an actor (a parent spawning the child under test).
func (t *Tap) Middleware() actor.ReceiverMiddleware {
	return func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(ctx actor.ReceiverContext, env *actor.MessageEnvelope) {
			if t.filter(env.Message) {
				defer t.in.q.push(envelope{msg: env.Message, sender: env.Sender})
			}
			next(ctx, env)
		}
	}
}

func (t *Tap) source() *inbox { return t.in }

// ExpectTapped is Expect for a tap: the next message the tapped actor
// handled, as a T.
func ExpectTapped[T any](t *Tap, timeout time.Duration) T {
	t.in.tb.Helper()
	return Expect[T](t, timeout)
}

// ExpectNoMsg fails the test if the tapped actor handles a message within
// d.
func (t *Tap) ExpectNoMsg(d time.Duration) {
	t.in.tb.Helper()
	t.in.expectNoMsg(d)
}

// LastSender is the sender of the last message taken from the tap.
func (t *Tap) LastSender() *actor.PID { return t.in.sender() }

// Len is the number of recorded messages not yet taken.
func (t *Tap) Len() int { return t.in.q.len() }

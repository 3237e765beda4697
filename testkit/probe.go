package testkit

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Probe is an actor that stands in for a real one in a test: it has a PID
// that can be handed to the actor under test, and it queues every message
// it receives so the test can assert on them with Expect.
//
// The probe's own lifecycle messages (Started, Stopping, ...) are not
// queued; *actor.Terminated of watched actors and anything else is.
type Probe struct {
	kit *Kit
	pid *actor.PID
	in  *inbox
}

// NewProbe spawns a probe; it is stopped when the test ends.
func (k *Kit) NewProbe() *Probe {
	k.tb.Helper()
	name := "probe" + k.system.ProcessRegistry.NextId()
	p := &Probe{kit: k, in: newInbox(k.tb, name)}
	p.pid = k.SpawnNamed(actor.PropsFromFunc(p.receive), name)
	return p
}

func (p *Probe) receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started, *actor.Stopping, *actor.Stopped, *actor.Restarting:
		// The probe's own lifecycle is not test traffic.
	default:
		p.in.q.push(envelope{msg: m, sender: ctx.Sender()})
	}
}

func (p *Probe) source() *inbox { return p.in }

// PID is the probe's address.
func (p *Probe) PID() *actor.PID { return p.pid }

// ExpectNoMsg fails the test if a message arrives within d. It always
// waits the full d, so keep d short (tens of milliseconds).
func (p *Probe) ExpectNoMsg(d time.Duration) {
	p.in.tb.Helper()
	p.in.expectNoMsg(d)
}

// Len is the number of received messages not yet taken by Expect.
func (p *Probe) Len() int { return p.in.q.len() }

// Send delivers msg to target with no sender, exactly like
// actor.Context.Send: the target's ctx.Sender() is nil and a Respond is
// dead-lettered. Use Request when the target should answer the probe.
func (p *Probe) Send(target *actor.PID, msg any) {
	p.kit.system.Root.Send(target, msg)
}

// Request delivers msg to target with the probe as sender, like
// actor.Context.Request: the target's ctx.Respond(x) arrives at the probe.
// Sending is synchronous on the caller's goroutine, so two Requests from
// the test reach the target in order.
func (p *Probe) Request(target *actor.PID, msg any) {
	p.kit.system.Root.RequestWithCustomSender(target, msg, p.pid)
}

// LastSender is the sender of the last message taken by Expect (or
// ExpectTerminated), or nil if it had none.
func (p *Probe) LastSender() *actor.PID { return p.in.sender() }

// Reply sends msg to LastSender, the way the real actor the probe stands
// in for would ctx.Respond. It fails the test if that message had no
// sender. The reply carries the probe as its sender, so the receiver can
// answer again; a future (RequestFuture) simply takes the message.
func (p *Probe) Reply(msg any) {
	p.in.tb.Helper()
	to := p.LastSender()
	if to == nil {
		p.in.tb.Fatalf("testkit: %s: Reply: the last message had no sender", p.in.name)
	}
	p.kit.system.Root.RequestWithCustomSender(to, msg, p.pid)
}

// Watch makes the probe receive *actor.Terminated when pid stops, as
// ctx.Watch would. It is synchronous: a Stop sent after Watch returns is
// seen after the watch. Watching an actor that is already gone yields a
// Terminated with reason NotFound.
func (p *Probe) Watch(pid *actor.PID) {
	p.sendSystem(pid, &actor.Watch{Watcher: p.pid})
}

// Unwatch undoes Watch.
func (p *Probe) Unwatch(pid *actor.PID) {
	p.sendSystem(pid, &actor.Unwatch{Watcher: p.pid})
}

func (p *Probe) sendSystem(pid *actor.PID, msg any) {
	// ProcessRegistry.Get returns the dead-letter process for unknown
	// PIDs, which answers a Watch with Terminated.
	proc, _ := p.kit.system.ProcessRegistry.Get(pid)
	proc.SendSystemMessage(pid, msg)
}

// ExpectTerminated takes the next message, which must be the
// *actor.Terminated for pid, within timeout.
func (p *Probe) ExpectTerminated(pid *actor.PID, timeout time.Duration) *actor.Terminated {
	p.in.tb.Helper()
	t := Expect[*actor.Terminated](p, timeout)
	if !t.Who.Equal(pid) {
		p.in.tb.Fatalf("testkit: %s: expected Terminated of %s, got Terminated of %s", p.in.name, pid, t.Who)
	}
	return t
}

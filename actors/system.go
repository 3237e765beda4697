package actors

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"
)

// NewSystem builds an actor system whose own logging goes to zap.
func NewSystem(lg *zap.Logger) *actor.ActorSystem {
	core := lg.Named("actor").Core()
	return actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(zapslog.NewHandler(core))
	}))
}

// Restart policy for subsystem actors: a panicking actor is restarted (its
// failing message dropped, its state reloaded from pebble on Started) up to
// MaxRestarts times within RestartWindow. Past that something is broken for
// good, and the guardian reports it instead of limping on.
const (
	MaxRestarts   = 10
	RestartWindow = 10 * time.Second
)

// Guardian is the node's root supervisor: the parent of every subsystem
// actor. It restarts a failed child (OneForOne) and, when a child stops for
// good, calls OnFatal so the process can shut down cleanly rather than run
// without, say, its store.
type Guardian struct {
	Logger  *zap.Logger
	OnFatal func(error)

	stopping  bool
	mailboxes mailboxes // its children's, for NewCollector
}

// SpawnChild asks the guardian to start a named child; the PID (or an
// error) comes back on Reply.
type SpawnChild struct {
	Name  string
	Props *actor.Props
	Reply chan<- SpawnResult
}

type SpawnResult struct {
	PID *actor.PID
	Err error
}

// StopChildren stops every child in reverse start order and replies when
// they are all gone.
type StopChildren struct{ Reply chan<- struct{} }

// GuardianProps returns the guardian's props with its supervision strategy.
func GuardianProps(g *Guardian) *actor.Props {
	strategy := actor.NewOneForOneStrategy(MaxRestarts, RestartWindow, func(reason any) actor.Directive {
		g.Logger.Error("actor failed; restarting it", zap.Any("reason", reason))
		return actor.RestartDirective
	})
	return actor.PropsFromProducer(func() actor.Actor { return g }, actor.WithSupervisor(countingStrategy{strategy}))
}

// countingStrategy is the guardian's strategy, counting each failure of a
// child (metastore_actor_panics_total) and each restart it decides
// (metastore_actor_restarts_total).
type countingStrategy struct{ actor.SupervisorStrategy }

func (s countingStrategy) HandleFailure(sys *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, rs *actor.RestartStatistics, reason, message any) {
	actorPanics.WithLabelValues(childName(child)).Inc()
	s.SupervisorStrategy.HandleFailure(sys, countingSupervisor{sup}, child, rs, reason, message)
}

type countingSupervisor struct{ actor.Supervisor }

func (s countingSupervisor) RestartChildren(pids ...*actor.PID) {
	for _, pid := range pids {
		actorRestarts.WithLabelValues(childName(pid)).Inc()
	}
	s.Supervisor.RestartChildren(pids...)
}

func (g *Guardian) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *SpawnChild:
		// No Watch: a parent already gets its children's Terminated.
		// The child gets the default mailbox, which the guardian keeps
		// to report its depth, run on the warm dispatcher's goroutines;
		// its failure counters start at 0.
		actorPanics.WithLabelValues(m.Name)
		actorRestarts.WithLabelValues(m.Name)
		var box actor.Mailbox // made while spawning, on this goroutine
		props := m.Props.Clone(actor.WithMailbox(func() actor.Mailbox {
			box = actor.Unbounded()()
			return box
		}), actor.WithDispatcher(warm))
		pid, err := ctx.SpawnNamed(props, m.Name)
		if err == nil && box != nil {
			g.mailboxes.set(m.Name, box)
		}
		Reply(m.Reply, SpawnResult{PID: pid, Err: err})
	case *StopChildren:
		g.stopping = true
		kids := ctx.Children()
		for i := len(kids) - 1; i >= 0; i-- {
			if err := ctx.StopFuture(kids[i]).Wait(); err != nil {
				g.Logger.Warn("stopping actor", zap.String("actor", kids[i].Id), zap.Error(err))
			}
		}
		Reply(m.Reply, struct{}{})
	case *actor.Terminated:
		if !g.stopping && g.OnFatal != nil {
			g.OnFatal(fmt.Errorf("actor %s stopped after repeated failures", m.Who.Id))
		}
	}
}

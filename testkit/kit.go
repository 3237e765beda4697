package testkit

import (
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// Kit is one test's actor system plus the bookkeeping to tear it down.
// Every test gets its own Kit so that actors, names, dead letters and
// supervisor events of one test can never leak into another.
type Kit struct {
	tb     testing.TB
	system *actor.ActorSystem
	logs   *tbWriter

	mu      sync.Mutex
	spawned []*actor.PID
}

// Option configures New.
type Option func(*config)

type config struct {
	logLevel slog.Level
	logs     bool
	actor    []actor.ConfigOption
}

// WithLogs routes the actor system's log/slog output at level and above to
// t.Log, so it is shown only for failing tests (or with go test -v). By
// default the system's logs are discarded: protoactor logs every start,
// restart and dead letter, which buries the failure message.
func WithLogs(level slog.Level) Option {
	return func(c *config) {
		c.logs = true
		c.logLevel = level
	}
}

// WithActorConfig passes options through to actor.NewActorSystem, e.g.
// actor.WithDeveloperSupervisionLogging(true) to print stack traces of
// panics. A logger factory given here overrides WithLogs.
func WithActorConfig(opts ...actor.ConfigOption) Option {
	return func(c *config) { c.actor = append(c.actor, opts...) }
}

// New starts a fresh actor system for tb and registers a t.Cleanup that
// stops every actor spawned through the Kit (waiting for each to
// terminate) and then shuts the system down. Shutdown alone stops no
// actor, which is why the Kit keeps track of what it spawned.
func New(tb testing.TB, opts ...Option) *Kit {
	tb.Helper()
	var c config
	for _, o := range opts {
		o(&c)
	}
	k := &Kit{tb: tb}
	var w io.Writer = io.Discard
	if c.logs {
		k.logs = &tbWriter{tb: tb}
		w = k.logs
	}
	level := c.logLevel
	factory := actor.WithLoggerFactory(func(s *actor.ActorSystem) *slog.Logger {
		h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
		return slog.New(h).With("system", s.ID)
	})
	k.system = actor.NewActorSystem(append([]actor.ConfigOption{factory}, c.actor...)...)
	tb.Cleanup(k.shutdown)
	return k
}

// System is the Kit's actor system.
func (k *Kit) System() *actor.ActorSystem { return k.system }

// Root is the system's root context, for Send/RequestFuture from the test.
func (k *Kit) Root() *actor.RootContext { return k.system.Root }

// Spawn spawns props from the root context and stops the actor when the
// test ends. Actors spawned from the root get protoactor's default
// supervision (OneForOne, 10 restarts in 10 s); spawn a parent with an
// explicit strategy to test anything else.
func (k *Kit) Spawn(props *actor.Props) *actor.PID {
	return k.track(k.system.Root.Spawn(props))
}

// SpawnNamed is Spawn with a fixed name; it fails the test if the name is
// taken.
func (k *Kit) SpawnNamed(props *actor.Props, name string) *actor.PID {
	k.tb.Helper()
	pid, err := k.system.Root.SpawnNamed(props, name)
	if err != nil {
		k.tb.Fatalf("testkit: spawn %q: %v", name, err)
	}
	return k.track(pid)
}

// SpawnPrefix is Spawn with a readable name prefix (shows up in logs).
func (k *Kit) SpawnPrefix(props *actor.Props, prefix string) *actor.PID {
	return k.track(k.system.Root.SpawnPrefix(props, prefix))
}

// Stop stops pid and waits until it has terminated (its Stopped has run
// and its watchers have been told), failing the test if that takes longer
// than protoactor's fixed 10 s.
func (k *Kit) Stop(pid *actor.PID) {
	k.tb.Helper()
	if err := k.system.Root.StopFuture(pid).Wait(); err != nil {
		k.tb.Fatalf("testkit: stop %s: %v", pid, err)
	}
}

func (k *Kit) track(pid *actor.PID) *actor.PID {
	k.mu.Lock()
	k.spawned = append(k.spawned, pid)
	k.mu.Unlock()
	return pid
}

func (k *Kit) shutdown() {
	k.mu.Lock()
	pids := k.spawned
	k.spawned = nil
	k.mu.Unlock()
	// Stop everything first and then wait, so teardown costs one actor
	// stop, not one per actor. Stopping an actor that is already gone is
	// harmless: the Watch is dead-lettered and answered with Terminated.
	futures := make([]*actor.Future, 0, len(pids))
	for i := len(pids) - 1; i >= 0; i-- {
		futures = append(futures, k.system.Root.StopFuture(pids[i]))
	}
	for i, f := range futures {
		if err := f.Wait(); err != nil {
			k.tb.Errorf("testkit: cleanup: stop %s: %v", pids[len(pids)-1-i], err)
		}
	}
	k.system.Shutdown()
	if k.logs != nil {
		k.logs.close()
	}
}

// tbWriter feeds slog's text output to tb.Log. Calling tb.Log after the
// test has finished panics, and protoactor logs from timers and actor
// goroutines that may outlive the test, so writes after close are dropped.
type tbWriter struct {
	mu     sync.RWMutex
	tb     testing.TB
	closed bool
}

func (w *tbWriter) Write(p []byte) (int, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if !w.closed {
		w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *tbWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

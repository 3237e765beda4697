package actors_test

import (
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/testkit"
)

const idle = time.Minute

// The dispatcher's tests run in a synctest bubble: synctest.Wait returns
// once every worker is blocked, i.e. parked on the handoff (a worker
// counts itself parked just before it blocks there).

// run schedules one func on d and waits until it has run and its worker
// has parked again.
func run(t *testing.T, d *actors.WarmDispatcher) {
	t.Helper()
	done := make(chan struct{})
	d.Schedule(func() { close(done) })
	<-done
	synctest.Wait()
}

// occupy schedules n funcs on d that run until release is closed, and
// returns once all n are running.
func occupy(d *actors.WarmDispatcher, n int) (release chan struct{}) {
	release = make(chan struct{})
	running := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		d.Schedule(func() { running <- struct{}{}; <-release })
		<-running
	}
	return release
}

func TestWarmDispatcherRunsOnAParkedWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := testkit.NewFakeClock(time.Unix(0, 0))
		d := actors.NewWarmDispatcher(10, clock, idle)
		for i := 0; i < 100; i++ {
			run(t, d)
		}
		if d.Starts() != 1 || d.Workers() != 1 || d.Parked() != 1 {
			t.Fatalf("100 runs one after another started %d workers (%d alive, %d parked), want 1", d.Starts(), d.Workers(), d.Parked())
		}
		if d.Throughput() != 10 {
			t.Fatalf("throughput %d, want 10", d.Throughput())
		}
		stopAll(t, d, clock)
	})
}

func TestWarmDispatcherDoesNotWaitForABusyWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := testkit.NewFakeClock(time.Unix(0, 0))
		d := actors.NewWarmDispatcher(10, clock, idle)
		release := occupy(d, 1)
		run(t, d) // must not wait for the first
		close(release)
		synctest.Wait()
		if d.Starts() != 2 || d.Workers() != 2 || d.Parked() != 2 {
			t.Fatalf("started %d workers (%d alive, %d parked), want 2", d.Starts(), d.Workers(), d.Parked())
		}
		stopAll(t, d, clock)
	})
}

func TestWarmDispatcherLetsIdleWorkersExit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := testkit.NewFakeClock(time.Unix(0, 0))
		d := actors.NewWarmDispatcher(10, clock, idle)
		close(occupy(d, 3)) // three workers, then all parked
		synctest.Wait()
		if d.Parked() != 3 || clock.Pending() != 1 {
			t.Fatalf("%d parked, %d timers, want 3 and the reap's 1", d.Parked(), clock.Pending())
		}

		// The first interval began with none parked: none exits.
		clock.Advance(idle)
		synctest.Wait()
		if d.Workers() != 3 || d.Parked() != 3 || clock.Pending() != 1 {
			t.Fatalf("after the first interval: %d workers, %d parked, %d timers, want 3, 3, 1", d.Workers(), d.Parked(), clock.Pending())
		}
		// Two were needed at once during the next: one was not, and exits.
		close(occupy(d, 2))
		synctest.Wait()
		clock.Advance(idle)
		synctest.Wait()
		if d.Workers() != 2 || d.Parked() != 2 || d.Starts() != 3 {
			t.Fatalf("after an interval that needed two: %d workers (%d parked, %d started), want 2 (2, 3)", d.Workers(), d.Parked(), d.Starts())
		}
		// An interval that needed none: the rest exit and the reap disarms.
		clock.Advance(idle)
		synctest.Wait()
		if d.Workers() != 0 || d.Parked() != 0 || clock.Pending() != 0 {
			t.Fatalf("after an idle interval: %d workers, %d parked, %d timers, want none", d.Workers(), d.Parked(), clock.Pending())
		}

		// Work again: a new worker, and the reap armed again.
		run(t, d)
		if d.Starts() != 4 || d.Workers() != 1 || clock.Pending() != 1 {
			t.Fatalf("after new work: %d started, %d workers, %d timers, want 4, 1, 1", d.Starts(), d.Workers(), clock.Pending())
		}
		stopAll(t, d, clock)
	})
}

// stopAll lets d's workers exit (two idle intervals with nothing to run),
// as the bubble wants before the test ends, and checks they have.
func stopAll(t *testing.T, d *actors.WarmDispatcher, clock *testkit.FakeClock) {
	t.Helper()
	clock.Advance(idle)
	clock.Advance(idle)
	synctest.Wait()
	if d.Workers() != 0 || clock.Pending() != 0 {
		t.Fatalf("two idle intervals: %d workers, %d timers left, want none", d.Workers(), clock.Pending())
	}
}

// TestWarmDispatcherUnderConcurrentLoad: funcs scheduled from several
// goroutines while reaps come and go all run, and the counts agree after.
func TestWarmDispatcherUnderConcurrentLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := testkit.NewFakeClock(time.Unix(0, 0))
		d := actors.NewWarmDispatcher(10, clock, idle)
		const senders, each = 4, 200
		var ran atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < senders; i++ {
			wg.Go(func() {
				for j := 0; j < each; j++ {
					d.Schedule(func() { ran.Add(1) })
					runtime.Gosched()
				}
			})
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; i < 50; i++ {
				clock.Advance(idle)
				runtime.Gosched()
			}
		}()
		wg.Wait()
		<-done
		synctest.Wait()
		if ran.Load() != senders*each || d.Parked() != d.Workers() {
			t.Fatalf("%d of %d funcs ran; %d parked of %d workers", ran.Load(), senders*each, d.Parked(), d.Workers())
		}
		stopAll(t, d, clock)
	})
}

// TestWarmDispatcherRunsAnActor: an actor on the dispatcher gets every
// message in order, though its mailbox's turns end whenever it empties
// and resume on whichever worker is parked; reaps (10 ms of wall time)
// run meanwhile.
func TestWarmDispatcherRunsAnActor(t *testing.T) {
	d := actors.NewWarmDispatcher(7, nil, 10*time.Millisecond)
	kit := testkit.New(t)
	got := make(chan int, 1000)
	pid := kit.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if n, ok := ctx.Message().(int); ok {
			got <- n
		}
	}, actor.WithDispatcher(d)))
	for i := 0; i < 1000; i++ {
		kit.Root().Send(pid, i)
		if i%10 == 0 {
			runtime.Gosched() // let the mailbox empty now and then
		}
	}
	for i := 0; i < 1000; i++ {
		select {
		case n := <-got:
			if n != i {
				t.Fatalf("message %d arrived as the %dth", n, i)
			}
		case <-time.After(wait):
			t.Fatalf("%d of 1000 messages arrived", i)
		}
	}
	if err := kit.Root().StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestGuardianChildrenRunOnWarmGoroutines: the Guardian gives its children
// the warm dispatcher, so a subsystem's mailbox runs on a worker that
// stays rather than on a goroutine started for the run.
func TestGuardianChildrenRunOnWarmGoroutines(t *testing.T) {
	kit := testkit.New(t)
	g, _ := guardian(t, kit)
	where := make(chan string, 1)
	props := actor.PropsFromFunc(func(ctx actor.Context) {
		if m, ok := ctx.Message().(*ask); ok {
			pcs := make([]uintptr, 64)
			frames := runtime.CallersFrames(pcs[:runtime.Callers(1, pcs)])
			var funcs []string
			for f, more := frames.Next(); more; f, more = frames.Next() {
				funcs = append(funcs, f.Function)
			}
			where <- strings.Join(funcs, "\n")
			actors.Reply(m.reply, m.n)
		}
	})
	res := spawnChild(t, kit, g, "child", props)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if _, err := actors.Ask(ctxT(t), kit.Root(), res.PID, func(r chan<- int) any { return &ask{n: 1, reply: r} }); err != nil {
		t.Fatal(err)
	}
	if stack := <-where; !strings.Contains(stack, "actors.(*WarmDispatcher).work") {
		t.Fatalf("the child's Receive ran on\n%s\nwant a WarmDispatcher worker", stack)
	}
	stopChildren(t, kit, g)
}

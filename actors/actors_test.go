package actors_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/testkit"
)

const wait = 5 * time.Second

type ask struct {
	n     int
	reply chan<- int
}

// doubler answers ask with 2n through the message's reply channel.
func doubler() actor.Actor {
	return actor.ReceiveFunc(func(ctx actor.Context) {
		if m, ok := ctx.Message().(*ask); ok {
			actors.Reply(m.reply, 2*m.n)
		}
	})
}

func TestAskGetsTheReply(t *testing.T) {
	kit := testkit.New(t)
	pid := kit.Spawn(actor.PropsFromProducer(doubler))
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			got, err := actors.Ask(context.Background(), kit.Root(), pid, func(r chan<- int) any { return &ask{i, r} })
			if err != nil || got != 2*i {
				t.Errorf("Ask(%d) = %d, %v", i, got, err)
			}
		}(i)
	}
	wg.Wait()
}

func TestAskHonoursContext(t *testing.T) {
	kit := testkit.New(t)
	silent := kit.NewProbe() // receives, never answers

	cases := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"cancelled while waiting", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(20*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 20*time.Millisecond)
		}, context.DeadlineExceeded},
		{"already cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := c.ctx()
			defer cancel()
			start := time.Now()
			got, err := actors.Ask(ctx, kit.Root(), silent.PID(), func(r chan<- int) any { return &ask{1, r} })
			if !errors.Is(err, c.want) || got != 0 {
				t.Fatalf("Ask = %d, %v; want 0, %v", got, err, c.want)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("Ask returned %v after the context ended", d)
			}
			// The message was still delivered: Ask sends before it waits.
			testkit.Expect[*ask](silent, wait)
		})
	}
}

func TestReplyNeverBlocks(t *testing.T) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		full := make(chan int, 1)
		actors.Reply(full, 1)
		actors.Reply(full, 2) // full: dropped, not blocked
		if v := <-full; v != 1 {
			t.Errorf("got %d, want the first reply", v)
		}
		actors.Reply(make(chan int), 3) // unbuffered, nobody listening
		var nilCh chan<- int
		actors.Reply(nilCh, 4) // no client
		actors.Reply[error](make(chan error, 1), nil)
	}()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("Reply blocked")
	}
}

// An actor that answers through Reply keeps working when a client has
// gone away and left its (full) channel behind.
func TestActorSurvivesAbandonedReplyChannels(t *testing.T) {
	kit := testkit.New(t)
	pid := kit.Spawn(actor.PropsFromProducer(doubler))
	full := make(chan int, 1)
	full <- 0
	for i := 0; i < 100; i++ {
		kit.Root().Send(pid, &ask{i, full})
		kit.Root().Send(pid, &ask{i, make(chan int)})
	}
	got, err := actors.Ask(ctxT(t), kit.Root(), pid, func(r chan<- int) any { return &ask{21, r} })
	if err != nil || got != 42 {
		t.Fatalf("Ask = %d, %v", got, err)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// guardian spawns a Guardian whose OnFatal calls are recorded.
func guardian(t *testing.T, kit *testkit.Kit) (*actor.PID, chan error) {
	fatal := make(chan error, 16)
	g := &actors.Guardian{Logger: zap.NewNop(), OnFatal: func(err error) { fatal <- err }}
	return kit.Spawn(actors.GuardianProps(g)), fatal
}

func spawnChild(t *testing.T, kit *testkit.Kit, g *actor.PID, name string, props *actor.Props) actors.SpawnResult {
	t.Helper()
	res, err := actors.Ask(ctxT(t), kit.Root(), g, func(r chan<- actors.SpawnResult) any {
		return &actors.SpawnChild{Name: name, Props: props, Reply: r}
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func stopChildren(t *testing.T, kit *testkit.Kit, g *actor.PID) {
	t.Helper()
	if _, err := actors.Ask(ctxT(t), kit.Root(), g, func(r chan<- struct{}) any { return &actors.StopChildren{Reply: r} }); err != nil {
		t.Fatal(err)
	}
}

// boomer counts "inc" and answers *ask with its count; it panics on "boom".
func boomer(starts *atomic.Int64) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		n := 0
		return actor.ReceiveFunc(func(ctx actor.Context) {
			switch m := ctx.Message().(type) {
			case *actor.Started:
				if starts != nil {
					starts.Add(1)
				}
			case string:
				if m == "boom" {
					panic("boom")
				}
				n++
			case *ask:
				actors.Reply(m.reply, n)
			}
		})
	})
}

func TestGuardianRestartsFailedChild(t *testing.T) {
	kit := testkit.New(t)
	ev := kit.CaptureEvents()
	g, fatal := guardian(t, kit)
	var starts atomic.Int64
	res := spawnChild(t, kit, g, "child", boomer(&starts))
	if res.Err != nil || res.PID == nil || !strings.HasSuffix(res.PID.Id, "/child") {
		t.Fatalf("spawn = %+v", res)
	}
	if dup := spawnChild(t, kit, g, "child", boomer(nil)); dup.Err == nil {
		t.Fatal("a second child with the same name was spawned")
	}
	kit.Root().Send(res.PID, "inc")
	kit.Root().Send(res.PID, "boom")
	se := ev.ExpectSupervisorEvent(wait)
	if se.Directive != actor.RestartDirective || !se.Child.Equal(res.PID) {
		t.Fatalf("supervisor event %+v", se)
	}
	// Same PID, fresh state (durable state is reloaded on Started).
	got, err := actors.Ask(ctxT(t), kit.Root(), res.PID, func(r chan<- int) any { return &ask{0, r} })
	if err != nil || got != 0 || starts.Load() != 2 {
		t.Fatalf("after restart: count %d, %v, starts %d", got, err, starts.Load())
	}
	select {
	case err := <-fatal:
		t.Fatalf("OnFatal after one failure: %v", err)
	default:
	}
	stopChildren(t, kit, g)
}

func TestGuardianOnFatalPastMaxRestarts(t *testing.T) {
	kit := testkit.New(t)
	ev := kit.CaptureEvents()
	g, fatal := guardian(t, kit)
	other := spawnChild(t, kit, g, "healthy", boomer(nil)).PID
	pid := spawnChild(t, kit, g, "flaky", boomer(nil)).PID

	for i := 1; i <= actors.MaxRestarts; i++ {
		kit.Root().Send(pid, "boom")
		if se := ev.ExpectSupervisorEvent(wait); se.Directive != actor.RestartDirective {
			t.Fatalf("failure %d: directive %v", i, se.Directive)
		}
	}
	select {
	case err := <-fatal:
		t.Fatalf("OnFatal within MaxRestarts: %v", err)
	default:
	}
	kit.Root().Send(pid, "boom") // one too many within RestartWindow
	if se := ev.ExpectSupervisorEvent(wait); se.Directive != actor.StopDirective {
		t.Fatalf("failure %d: directive %v, want stop", actors.MaxRestarts+1, se.Directive)
	}
	select {
	case err := <-fatal:
		if !strings.Contains(err.Error(), "flaky") {
			t.Fatalf("OnFatal(%v) does not name the child", err)
		}
	case <-time.After(wait):
		t.Fatal("OnFatal not called")
	}
	// Only the failed child is gone.
	if _, err := actors.Ask(ctxT(t), kit.Root(), other, func(r chan<- int) any { return &ask{0, r} }); err != nil {
		t.Fatal(err)
	}
}

// One child stopping for good is one fatal failure.
func TestGuardianOnFatalOncePerChild(t *testing.T) {
	kit := testkit.New(t)
	g, fatal := guardian(t, kit)
	pid := spawnChild(t, kit, g, "flaky", boomer(nil)).PID
	for i := 0; i <= actors.MaxRestarts; i++ {
		kit.Root().Send(pid, "boom")
	}
	select {
	case <-fatal:
	case <-time.After(wait):
		t.Fatal("OnFatal not called")
	}
	select {
	case err := <-fatal:
		t.Fatalf("OnFatal called twice: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestGuardianStopChildrenInReverseOrder(t *testing.T) {
	kit := testkit.New(t)
	g, fatal := guardian(t, kit)
	var mu sync.Mutex
	var order []string
	for _, name := range []string{"store", "raft", "lease"} {
		name := name
		spawnChild(t, kit, g, name, actor.PropsFromFunc(func(ctx actor.Context) {
			if _, ok := ctx.Message().(*actor.Stopping); ok {
				mu.Lock()
				order = append(order, name)
				mu.Unlock()
			}
		}))
	}
	stopChildren(t, kit, g)
	mu.Lock()
	got := strings.Join(order, ",")
	mu.Unlock()
	if got != "lease,raft,store" {
		t.Fatalf("stop order %s, want lease,raft,store", got)
	}
	select {
	case err := <-fatal:
		t.Fatalf("OnFatal on an orderly stop: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
}

func TestRealClock(t *testing.T) {
	var ticks atomic.Int64
	stop := actors.RealClock.Every(time.Millisecond, func() { ticks.Add(1) })
	deadline := time.Now().Add(wait)
	for ticks.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("Every never fired")
		}
		time.Sleep(time.Millisecond)
	}
	stop()
	stop() // idempotent
	n := ticks.Load()
	time.Sleep(10 * time.Millisecond)
	if ticks.Load() > n+1 {
		t.Fatalf("ticks continued after stop: %d -> %d", n, ticks.Load())
	}

	fired := make(chan struct{})
	cancel := actors.RealClock.AfterFunc(time.Hour, func() { close(fired) })
	if !cancel() || cancel() {
		t.Fatal("AfterFunc stop should report true once")
	}
	actors.RealClock.AfterFunc(0, func() { close(fired) })
	select {
	case <-fired:
	case <-time.After(wait):
		t.Fatal("AfterFunc never fired")
	}
	if d := time.Since(actors.RealClock.Now()); d < 0 || d > time.Second {
		t.Fatalf("RealClock.Now off by %v", d)
	}
}

// The real clock's stop returns only once f has returned and will not run
// again: the health updater reads the DB in f, and the member closes the
// DB after stopping it (the power-loss suite caught a read of a closed DB
// panicking the process).
func TestRealClockStopWaitsForF(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var running, calls atomic.Int32
	var once sync.Once
	stop := actors.RealClock.Every(time.Millisecond, func() {
		running.Add(1)
		defer running.Add(-1)
		calls.Add(1)
		once.Do(func() { close(entered) })
		<-release
	})
	<-entered
	stopped := make(chan int32)
	go func() { stop(); stopped <- running.Load() }()
	select {
	case r := <-stopped:
		t.Fatalf("stop returned while f ran (running=%d)", r)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if r := <-stopped; r != 0 {
		t.Fatalf("f running after stop returned: %d", r)
	}
	n := calls.Load()
	stop() // again: returns at once
	if calls.Load() != n {
		t.Fatal("f ran after stop")
	}
}

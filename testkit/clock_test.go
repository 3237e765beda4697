package testkit_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/testkit"
)

var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func TestFakeClockFiresInTimeOrder(t *testing.T) {
	c := testkit.NewFakeClock(epoch)
	var got []string
	at := func(name string) func() {
		return func() { got = append(got, fmt.Sprintf("%s@%v", name, c.Now().Sub(epoch))) }
	}
	c.AfterFunc(3*time.Second, at("a"))
	c.Every(time.Second, at("tick"))
	c.AfterFunc(time.Second, at("b")) // due with the first tick: runs after it
	c.Advance(3500 * time.Millisecond)

	want := []string{"tick@1s", "b@1s", "tick@2s", "a@3s", "tick@3s"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if d := c.Now().Sub(epoch); d != 3500*time.Millisecond {
		t.Fatalf("Now = epoch+%v", d)
	}
	c.Advance(500 * time.Millisecond)
	if len(got) != 6 || got[5] != "tick@4s" {
		t.Fatalf("got %v", got)
	}
}

func TestFakeClockStop(t *testing.T) {
	c := testkit.NewFakeClock(epoch)
	fired := 0
	stop := c.AfterFunc(time.Second, func() { fired++ })
	if !stop() || stop() {
		t.Fatal("stop should report true once, before firing")
	}
	stop = c.AfterFunc(time.Second, func() { fired++ })
	c.Advance(time.Second)
	if fired != 1 || stop() {
		t.Fatalf("fired = %d; stop after firing must report false", fired)
	}

	ticks := 0
	var stopTick func()
	stopTick = c.Every(time.Second, func() {
		ticks++
		if ticks == 2 {
			stopTick() // from inside the callback: the lock is not held
		}
	})
	c.Advance(10 * time.Second)
	stopTick() // idempotent
	if ticks != 2 || c.Pending() != 0 {
		t.Fatalf("ticks = %d, pending = %d", ticks, c.Pending())
	}
}

func TestFakeClockCallbacksMayUseTheClock(t *testing.T) {
	c := testkit.NewFakeClock(epoch)
	var got []time.Duration
	c.AfterFunc(time.Second, func() {
		// Scheduled during the advance and due within it: runs too.
		c.AfterFunc(time.Second, func() { got = append(got, c.Now().Sub(epoch)) })
		c.AfterFunc(time.Hour, func() { got = append(got, c.Now().Sub(epoch)) })
	})
	c.AfterFunc(0, func() { got = append(got, c.Now().Sub(epoch)) })
	if len(got) != 0 {
		t.Fatal("AfterFunc(0) ran inside AfterFunc")
	}
	c.Advance(0)
	c.Advance(5 * time.Second)
	if want := []time.Duration{0, 2 * time.Second}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if c.Pending() != 1 {
		t.Fatalf("pending = %d", c.Pending())
	}
}

func TestFakeClockSet(t *testing.T) {
	c := testkit.NewFakeClock(epoch)
	fired := false
	c.AfterFunc(time.Minute, func() { fired = true })
	c.Set(epoch.Add(-time.Hour))
	if fired || !c.Now().Equal(epoch.Add(-time.Hour)) {
		t.Fatal("Set backwards")
	}
	c.Set(epoch.Add(time.Minute))
	if !fired || !c.Now().Equal(epoch.Add(time.Minute)) {
		t.Fatal("Set forwards did not fire the timer")
	}
}

func TestFakeClockIsGoroutineSafe(t *testing.T) {
	c := testkit.NewFakeClock(epoch)
	var fired atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				c.AfterFunc(time.Millisecond, func() { fired.Add(1) })
				c.Advance(time.Millisecond)
				_ = c.Now()
			}
		}()
	}
	wg.Wait()
	c.Advance(time.Millisecond)
	if n := fired.Load(); n != 800 {
		t.Fatalf("fired %d of 800", n)
	}
}

type tick struct{}

// ticker is a real actor driven by an actors.Clock: it forwards a tick
// to report every second.
func ticker(clock actors.Clock, report *actor.PID) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		var stop func()
		return actor.ReceiveFunc(func(ctx actor.Context) {
			switch ctx.Message().(type) {
			case *actor.Started:
				self, root := ctx.Self(), ctx.ActorSystem().Root
				stop = clock.Every(time.Second, func() { root.Send(self, tick{}) })
			case *actor.Stopping:
				stop()
			case tick:
				ctx.Send(report, tick{})
			}
		})
	})
}

func TestFakeClockDrivesAnActor(t *testing.T) {
	kit := testkit.New(t)
	clock := testkit.NewFakeClock(epoch)
	p := kit.NewProbe()
	pid := kit.Spawn(ticker(clock, p.PID()))

	// The actor starts its timer on its own goroutine: wait for it.
	if !clock.WaitPending(1, wait) {
		t.Fatal("actor never started its timer")
	}
	clock.Advance(3500 * time.Millisecond)
	for range 3 {
		testkit.Expect[tick](p, wait)
	}
	p.ExpectNoMsg(20 * time.Millisecond)

	kit.Stop(pid)
	if clock.Pending() != 0 {
		t.Fatal("timer not stopped with the actor")
	}
}

package testkit

import (
	"sync"
	"time"

	"github.com/metastore/metastore/actors"
)

// FakeClock is an actors.Clock that moves only when the test says so:
// Advance and Set run every callback that has come due, synchronously,
// in time order, on the caller's goroutine. Time-driven actor code (lease
// expiry, ticks, election timeouts) thus runs the same way every time and
// without sleeping.
//
// Callbacks run without the clock's lock held, so they may call the clock
// (Now, AfterFunc, stop, even Advance). A callback due at or before Now
// (AfterFunc with d <= 0) runs on the next Advance or Set, never inside
// AfterFunc itself, so a caller holding a lock cannot deadlock on it.
// Advance from one goroutine at a time: concurrent Advances are safe but
// may run callbacks concurrently, which a real clock's ticker never does.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	seq     uint64 // creation order breaks ties between timers due together
	timers  map[*fakeTimer]struct{}
	changed chan struct{} // closed and replaced whenever timers change
}

type fakeTimer struct {
	when   time.Time
	period time.Duration // > 0 for Every
	seq    uint64
	f      func()
}

var _ actors.Clock = (*FakeClock)(nil)

// NewFakeClock returns a clock that reads start until moved.
func NewFakeClock(start time.Time) *FakeClock {
	return &FakeClock{now: start, timers: map[*fakeTimer]struct{}{}, changed: make(chan struct{})}
}

// Now returns the clock's current time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Every calls f every d of fake time until stop is called. Like
// time.NewTicker it panics if d <= 0.
func (c *FakeClock) Every(d time.Duration, f func()) (stop func()) {
	if d <= 0 {
		panic("testkit: FakeClock.Every: non-positive interval")
	}
	t := c.add(d, d, f)
	return func() { c.remove(t) }
}

// AfterFunc calls f once when the clock reaches Now()+d, unless stop is
// called first; stop reports whether it prevented the call.
func (c *FakeClock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	t := c.add(d, 0, f)
	return func() bool { return c.remove(t) }
}

func (c *FakeClock) add(d, period time.Duration, f func()) *fakeTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{when: c.now.Add(d), period: period, seq: c.seq, f: f}
	c.timers[t] = struct{}{}
	c.notifyLocked()
	return t
}

func (c *FakeClock) remove(t *fakeTimer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.timers[t]; !ok {
		return false
	}
	delete(c.timers, t)
	c.notifyLocked()
	return true
}

func (c *FakeClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Advance moves the clock forward by d, running due callbacks in time
// order; while a callback runs, Now returns the time it was due. An Every
// callback runs once for each period that elapses. Callbacks that come
// due during the advance (scheduled by other callbacks) run too.
func (c *FakeClock) Advance(d time.Duration) {
	if d < 0 {
		panic("testkit: FakeClock.Advance: negative duration")
	}
	c.mu.Lock()
	target := c.now.Add(d)
	c.mu.Unlock()
	c.runUntil(target)
}

// Set moves the clock to t. Moving forward is Advance(t.Sub(Now())).
// Moving backward runs nothing: timers stay due at their absolute times.
func (c *FakeClock) Set(t time.Time) {
	c.mu.Lock()
	if !t.After(c.now) {
		c.now = t
		c.mu.Unlock()
		c.runUntil(t) // timers due at or before t (d <= 0) still run
		return
	}
	c.mu.Unlock()
	c.runUntil(t)
}

// runUntil fires timers due at or before target, one at a time, releasing
// the lock around each callback.
func (c *FakeClock) runUntil(target time.Time) {
	for {
		c.mu.Lock()
		t := c.nextDueLocked(target)
		if t == nil {
			if target.After(c.now) {
				c.now = target
			}
			c.mu.Unlock()
			return
		}
		if t.when.After(c.now) {
			c.now = t.when
		}
		if t.period > 0 {
			t.when = t.when.Add(t.period)
		} else {
			delete(c.timers, t)
			c.notifyLocked()
		}
		f := t.f
		c.mu.Unlock()
		f()
	}
}

func (c *FakeClock) nextDueLocked(target time.Time) *fakeTimer {
	var next *fakeTimer
	for t := range c.timers {
		if t.when.After(target) {
			continue
		}
		if next == nil || t.when.Before(next.when) || (t.when.Equal(next.when) && t.seq < next.seq) {
			next = t
		}
	}
	return next
}

// Pending is the number of active timers: AfterFuncs not yet fired or
// stopped, and Everys not stopped.
func (c *FakeClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// WaitPending waits up to timeout until at least n timers are active and
// reports whether they are. Actors usually start their timers while
// handling a message, on their own goroutine; a test calls WaitPending
// before Advance so the advance is not over before the timer exists.
func (c *FakeClock) WaitPending(n int, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ok, changed := len(c.timers) >= n, c.changed
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return false
		}
	}
}

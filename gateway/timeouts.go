package gateway

import (
	"sync/atomic"
	"time"
)

// requestTimeouts hands out channels that close the request timeout after
// they were asked for, give or take a tick: every request asking within
// the same tick shares one channel and one timer. A context.WithTimeout per
// proposal (a timer, a child registered with the stream's context, a
// cancel) was 5 % of the server's CPU in the put benchmark.
type requestTimeouts struct {
	d, tick time.Duration
	cur     atomic.Pointer[timeoutSlot]
}

// timeoutSlot is a channel closed at (or just after) at.
type timeoutSlot struct {
	at time.Time
	ch chan struct{}
}

func newRequestTimeouts(d time.Duration) *requestTimeouts {
	return &requestTimeouts{d: d, tick: max(d/64, time.Millisecond)}
}

// after returns a channel closed no sooner than d from now and no later
// than d plus a tick.
func (t *requestTimeouts) after() <-chan struct{} {
	now := time.Now()
	due := now.Add(t.d)
	for {
		s := t.cur.Load()
		if s != nil && !s.at.Before(due) {
			return s.ch
		}
		n := &timeoutSlot{at: due.Add(t.tick), ch: make(chan struct{})}
		if t.cur.CompareAndSwap(s, n) {
			time.AfterFunc(n.at.Sub(now), func() { close(n.ch) })
			return n.ch
		}
	}
}

package actors

import "time"

// Clock is time as actors see it. Actors never call time.Now or start
// timers directly: they take a Clock so tests can drive time by hand
// (testkit.FakeClock) and get the same result every run.
type Clock interface {
	Now() time.Time
	// Every calls f every d until stop is called. f runs on a goroutine of
	// the clock's choosing: it should only Send a message to an actor.
	Every(d time.Duration, f func()) (stop func())
	// AfterFunc calls f once after d unless stop is called first; stop
	// reports whether it prevented the call.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// RealClock is the wall clock.
var RealClock Clock = realClock{}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Every(d time.Duration, f func()) func() {
	t := time.NewTicker(d)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-t.C:
				f()
			case <-done:
				return
			}
		}
	}()
	var stopped bool
	return func() {
		if !stopped {
			stopped = true
			t.Stop()
			close(done)
		}
	}
}

func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

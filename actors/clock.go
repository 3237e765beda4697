package actors

import (
	"sync"
	"time"
)

// Clock is time as actors see it. Actors never call time.Now or start
// timers directly: they take a Clock so tests can drive time by hand
// (testkit.FakeClock) and get the same result every run.
type Clock interface {
	Now() time.Time
	// Every calls f every d until stop is called. f runs on a goroutine of
	// the clock's choosing: it should only Send a message to an actor.
	// Once stop returns f is not running and will not run again (what f
	// reads may be closed next); f must not call stop.
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
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-t.C:
				// A tick and stop can be ready together: select picks
				// either, so stop is checked again before f runs.
				select {
				case <-done:
					return
				default:
				}
				f()
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { t.Stop(); close(done) })
		<-exited
	}
}

func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

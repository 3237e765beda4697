package actors

import (
	"sync/atomic"
	"time"
)

// LogLimiter lets one log line through per interval, as its clock tells
// time, and counts the lines it holds back: for errors that can come with
// every request (a failing disk fails every read), where a line each
// would bury the rest of the log. Safe for concurrent use.
type LogLimiter struct {
	clock    Clock
	interval time.Duration
	next     atomic.Int64 // unix nanoseconds before which lines are held back
	held     atomic.Int64 // lines held back since the last one let through
}

// NewLogLimiter lets a line through every interval at most (clock nil:
// the wall clock).
func NewLogLimiter(clock Clock, interval time.Duration) *LogLimiter {
	if clock == nil {
		clock = RealClock
	}
	return &LogLimiter{clock: clock, interval: interval}
}

// Allow reports whether a line may be logged now and, when it may, how
// many lines were held back since the previous one: log that number with
// it, so that the log still says how often the error came.
func (l *LogLimiter) Allow() (ok bool, held int64) {
	now := l.clock.Now().UnixNano()
	next := l.next.Load()
	if now < next || !l.next.CompareAndSwap(next, now+int64(l.interval)) {
		l.held.Add(1)
		return false, 0
	}
	return true, l.held.Swap(0)
}

package actors

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastore/metastore/metrics"
)

// WarmDispatcher is a protoactor Dispatcher that runs mailboxes on
// goroutines that stay after a run, parked until the next one.
//
// Why: protoactor's default dispatcher starts a goroutine (`go fn()`) each
// time an idle mailbox gets a message. A new goroutine starts with a small
// stack; the raft and store actors' runs grow it by copying (raft.Step,
// Store.apply), and the copies are thrown away when the goroutine ends. On
// a lightly loaded member — one client, one message per mailbox run — that
// stack growth was a fifth of the server's CPU until enough GCs had taught
// the runtime a larger starting stack. A worker that lives on keeps the
// stack it grew (the Makefile links the server with gcshrinkstackoff).
//
// Schedule hands fn to a parked worker if one is waiting and otherwise
// starts a new one, so it never blocks and never queues behind another
// mailbox: a mailbox runs as soon as it is scheduled, as with the default
// dispatcher. Workers are shared by every actor on the dispatcher; there
// are about as many as mailboxes ran at once (a worker between its turn's
// end and its wait cannot take the next, so Schedule may start another).
//
// Workers that were not needed exit: every idle interval (as the clock
// tells it, armed only while workers exist) as many workers exit as stayed
// parked throughout the interval, so a member that stopped its actors
// keeps no goroutine and no timer after at most two intervals.
type WarmDispatcher struct {
	throughput int
	clock      Clock
	idle       time.Duration
	// handoff is unbuffered: a send succeeds only when a parked worker
	// takes it. A nil func tells the worker that takes it to exit.
	handoff chan func()

	parked atomic.Int64 // workers waiting on handoff
	fewest atomic.Int64 // fewest parked since the last reap
	starts atomic.Int64 // workers started, ever

	mu      sync.Mutex
	workers int  // alive: running a mailbox or parked
	reaping bool // a reap is armed on the clock
}

var _ actor.Dispatcher = (*WarmDispatcher)(nil)

// NewWarmDispatcher gives mailboxes throughput (as protoactor's
// dispatchers do: see Throughput) and lets workers parked for a whole idle
// interval of clock exit (clock nil: the wall clock). Like time.NewTicker
// it panics if idle <= 0.
func NewWarmDispatcher(throughput int, clock Clock, idle time.Duration) *WarmDispatcher {
	if idle <= 0 {
		panic("actors: NewWarmDispatcher: non-positive idle interval")
	}
	if clock == nil {
		clock = RealClock
	}
	return &WarmDispatcher{throughput: throughput, clock: clock, idle: idle, handoff: make(chan func())}
}

// Throughput is the number of messages a mailbox processes between two
// runtime.Gosched calls; its turn goes on until the mailbox is empty.
func (d *WarmDispatcher) Throughput() int { return d.throughput }

// Schedule runs fn on a parked worker, or on a new one if none is parked.
func (d *WarmDispatcher) Schedule(fn func()) {
	select {
	case d.handoff <- fn:
	default:
		d.started()
		go d.work(fn)
	}
}

func (d *WarmDispatcher) work(fn func()) {
	for {
		fn()
		d.parked.Add(1)
		if fn = <-d.handoff; fn == nil {
			return // reap counted it out of parked and workers
		}
		d.lowerFewest(d.parked.Add(-1))
	}
}

// lowerFewest records that only n workers were parked at one moment.
func (d *WarmDispatcher) lowerFewest(n int64) {
	for f := d.fewest.Load(); n < f && !d.fewest.CompareAndSwap(f, n); f = d.fewest.Load() {
	}
}

func (d *WarmDispatcher) started() {
	d.starts.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.workers++
	if !d.reaping {
		// Not reaping: the last reap left no worker, so none is parked.
		d.reaping = true
		d.fewest.Store(0)
		d.clock.AfterFunc(d.idle, d.reap)
	}
}

// reap lets exit as many workers as stayed parked since the last reap:
// they were not needed over a whole interval. The nil it hands a worker is
// taken only by one parked now; a worker that is between runs is left.
// The count is a heuristic (a worker taking a turn while reap resets it
// may count as parked all the next interval): nothing depends on it
// being exact, a worker missing is just started again.
func (d *WarmDispatcher) reap() {
	exited := 0
exits:
	for n := d.fewest.Load(); n > 0; n-- {
		select {
		case d.handoff <- nil:
			d.parked.Add(-1)
			exited++
		default:
			break exits
		}
	}
	d.fewest.Store(d.parked.Load())
	d.mu.Lock()
	defer d.mu.Unlock()
	d.workers -= exited
	if d.reaping = d.workers > 0; d.reaping {
		d.clock.AfterFunc(d.idle, d.reap)
	}
}

// Workers is the number of workers running a mailbox or parked (a worker
// told to exit is not counted: it is returning).
func (d *WarmDispatcher) Workers() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.workers
}

// Parked is the number of workers waiting for a mailbox to run.
func (d *WarmDispatcher) Parked() int { return int(d.parked.Load()) }

// Starts is the number of workers started since the dispatcher was made.
func (d *WarmDispatcher) Starts() int64 { return d.starts.Load() }

// warm is the dispatcher the Guardian gives its children: one per process,
// shared by every member's subsystem actors. 300 is protoactor's default
// throughput; a worker idle for a minute or two exits.
var warm = NewWarmDispatcher(300, RealClock, time.Minute)

func init() {
	metrics.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "metastore_actor_goroutines",
			Help: "Goroutines that run the subsystem actors' mailboxes, running or parked until the next run.",
		}, func() float64 { return float64(warm.Workers()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "metastore_actor_goroutine_starts_total",
			Help: "Goroutines started to run the subsystem actors' mailboxes (none was parked); grows slowly once a member is warm.",
		}, func() float64 { return float64(warm.Starts()) }),
	)
}

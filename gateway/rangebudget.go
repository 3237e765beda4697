package gateway

import (
	"context"
	"errors"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/metrics"
)

// rangeBudget bounds the bytes of Range (and read-only Txn) responses
// being built and sent at once (--max-range-bytes-in-flight): etcd builds every response whole, so
// ten clients listing 100 MB each hold a gigabyte or more at once, and
// enough of them take the member down (etcd's known out-of-memory case).
//
// A request takes bytes as its read builds key-values (rangeTicket.charge,
// in chunks) and gives them back when gRPC has written its encoded
// response to the connection, or dropped it (rangesend.go). When the
// budget is spent, a request waits for bytes before it reads on; waiting
// requests are served in the order they first took bytes, so a large one
// is not overtaken forever by small ones.
//
// The oldest request holding bytes never waits: it overdrafts. So one
// response larger than the whole budget is still answered, and nothing
// deadlocks — the oldest always progresses, and its bytes come back once
// it is sent. Every other grant keeps the total within the limit, so
//
//	inFlight <= limit + what the oldest request holds
//
// holds at all times. A client that stops reading holds its bytes until
// its stream ends (its deadline, a cancel, or a closed connection), and
// meanwhile later large reads wait: memory stays bounded rather than
// growing with every list queued behind it.
//
// Reads whose result stays under untrackedRangeBytes never take any
// (single keys, Kubernetes' gets, small pages): they pay no lock, and the
// bytes they leave unaccounted are at most that per request in flight.
//
// Some bytes come back only through the GC: a response gRPC drops without
// freeing it (rangesend.go: a closed connection, a cancel that overtakes
// the write) releases its ticket from a cleanup, at the next collection,
// and an idle member may not collect for two minutes (the runtime's
// forced GC) while reads wait for those bytes. So while reads wait, the
// budget starts a GC collectAfter into the wait and then every
// collectEvery at most: a bounded cost, paid only while reads wait.
type rangeBudget struct {
	limit int64
	lg    *zap.Logger
	// clock and collect are the time the collect timer runs on and the
	// collection it starts (on a goroutine of its own): the wall clock
	// and runtime.GC but in tests (setClock). collectGate lets one
	// collection through per collectEvery, on clock.
	clock       actors.Clock
	collectGate *actors.LogLimiter
	collect     func()

	mu       sync.Mutex
	inFlight int64
	// oldest and newest are the ends of the list of tickets holding bytes,
	// in the order they first took some: the oldest may overdraft.
	oldest, newest *rangeTicket
	waiting        int // tickets of the list waiting for bytes
	// collectArmed: the collect timer is running (it runs while tickets
	// wait).
	collectArmed bool
	// observe, when set (tests), is called under mu after each grant,
	// each ticket that starts waiting and each release.
	observe func()
}

const (
	// untrackedRangeBytes is how much of its result a read builds before
	// it takes bytes from the budget (all it has built, then).
	untrackedRangeBytes = 64 << 10
	// rangeChargeChunk is the least a ticket takes at a time, so that a
	// large read locks the budget once per chunk, not per key.
	rangeChargeChunk = 256 << 10
	// collectAfter is how long reads wait for bytes before the budget
	// starts a GC to collect the responses gRPC dropped; collectEvery the
	// least time between two such collections.
	collectAfter = time.Second
	collectEvery = 10 * time.Second
)

// newRangeBudget is a budget of limit bytes; 0 or less: unbounded (as
// etcd), the bytes in flight still counted.
func newRangeBudget(limit int64, lg *zap.Logger) *rangeBudget {
	if limit <= 0 {
		limit = math.MaxInt64
	}
	b := &rangeBudget{limit: limit, lg: lg, collect: runtime.GC}
	b.setClock(actors.RealClock)
	return b
}

// setClock makes clock the time of the collect timer and its gate.
func (b *rangeBudget) setClock(clock actors.Clock) {
	b.clock = clock
	b.collectGate = actors.NewLogLimiter(clock, collectEvery)
}

// rangeTicket is one request's share of the budget. Its own goroutine
// calls charge; release may come from another (gRPC's writer), once.
type rangeTicket struct {
	b *rangeBudget
	// built is the largest total charge has been told (the read's own
	// goroutine only).
	built int64

	// Written under b.mu. The owner reads held without it: only the
	// owner's own take, or a grant it is waiting for, changes it before
	// the response is handed to gRPC.
	held       int64         // bytes taken
	waited     time.Duration // in all, waiting for bytes
	listed     bool          // in the budget's list (holds or held bytes)
	released   bool
	want       int64         // bytes waited for; 0: not waiting
	wake       chan struct{} // granted while waiting (cap 1)
	prev, next *rangeTicket
}

func (b *rangeBudget) ticket() *rangeTicket { return &rangeTicket{b: b} }

// charge tells the ticket its read has built built bytes so far (a read
// that starts over, after a snapshot install or a compaction overtook it,
// counts again from 0 and takes nothing until it passes what it holds).
// It takes what is missing from the budget, waiting while the budget is
// spent unless the ticket is the oldest; a client that goes away ends the
// wait, and the read, with clientGone.
func (t *rangeTicket) charge(ctx context.Context, built int64) error {
	t.built = max(t.built, built)
	if built <= t.held || (t.held == 0 && built <= untrackedRangeBytes) {
		return nil
	}
	if ctx.Err() != nil {
		return clientGone(ctx)
	}
	return t.b.take(ctx, t, max(built-t.held, rangeChargeChunk))
}

func (b *rangeBudget) take(ctx context.Context, t *rangeTicket, n int64) error {
	b.mu.Lock()
	if !t.listed {
		b.append(t)
	}
	if b.mayTake(t, n) {
		b.grant(t, n)
		b.mu.Unlock()
		return nil
	}
	t.want = n
	if t.wake == nil {
		t.wake = make(chan struct{}, 1)
	}
	b.waiting++
	b.armCollect()
	b.changed()
	b.mu.Unlock()

	start := time.Now()
	select {
	case <-t.wake:
		b.mu.Lock()
		t.waited += time.Since(start)
		b.mu.Unlock()
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t.waited += time.Since(start)
	if t.want == 0 {
		<-t.wake // granted meanwhile (the token was sent under mu); the caller releases
		return nil
	}
	t.want = 0
	b.waiting--
	// A waiter behind this one may fit now that it no longer waits.
	b.wakeWaiters()
	return clientGone(ctx)
}

// clientGone is etcd's answer to a request whose client canceled it or
// whose deadline passed. It is a gRPC status, so the store's reader does
// not take it for a failed read.
func clientGone(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return rpctypes.ErrGRPCDeadlineExceeded
	}
	return rpctypes.ErrGRPCCanceled
}

// mayTake: the oldest always may; another only within the limit and when
// no older ticket waits (first come, first served).
func (b *rangeBudget) mayTake(t *rangeTicket, n int64) bool {
	if t == b.oldest {
		return true
	}
	if b.inFlight+n > b.limit {
		return false
	}
	if b.waiting > 0 {
		for o := b.oldest; o != t; o = o.next {
			if o.want > 0 {
				return false
			}
		}
	}
	return true
}

func (b *rangeBudget) grant(t *rangeTicket, n int64) {
	t.held += n
	b.inFlight += n
	rangeBytesInFlight.Add(float64(n))
	b.changed()
}

func (b *rangeBudget) changed() {
	if b.observe != nil {
		b.observe()
	}
}

// release gives back everything t holds, at once, and lets the waiters
// that now may take what they wait for. It may be called more than once
// (only the first counts), from any goroutine.
func (t *rangeTicket) release() {
	if t == nil {
		return // the read failed before it was charged
	}
	b := t.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.released {
		return
	}
	t.released = true
	if !t.listed {
		return
	}
	if t.waited > 0 {
		rangeBudgetWaits.Inc()
		rangeBudgetWaitSeconds.Observe(t.waited.Seconds())
	}
	if t.want > 0 {
		t.want = 0
		b.waiting--
	}
	b.remove(t)
	b.inFlight -= t.held
	rangeBytesInFlight.Sub(float64(t.held))
	t.held = 0
	b.changed()
	b.wakeWaiters()
}

// wakeWaiters grants waiting tickets in order while they may take what
// they wait for; the first that may not stops the others behind it.
func (b *rangeBudget) wakeWaiters() {
	for o := b.oldest; o != nil && b.waiting > 0; o = o.next {
		if o.want == 0 {
			continue
		}
		if o != b.oldest && b.inFlight+o.want > b.limit {
			return
		}
		n := o.want
		o.want = 0
		b.waiting--
		b.grant(o, n)
		o.wake <- struct{}{}
	}
}

// armCollect starts the collect timer unless it runs (under mu). A timer
// that finds tickets waiting starts the next, so it runs while any wait:
// the first read to wait after a quiet spell waits at most collectAfter
// before a collection, a later one may wait less.
func (b *rangeBudget) armCollect() {
	if b.collectArmed {
		return
	}
	b.collectArmed = true
	b.clock.AfterFunc(collectAfter, b.collectTick)
}

// collectTick starts a collection if tickets still wait and the last was
// collectEvery ago or longer.
func (b *rangeBudget) collectTick() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.collectArmed = false
	if b.waiting == 0 {
		return
	}
	if ok, _ := b.collectGate.Allow(); ok {
		rangeBudgetCollections.Inc()
		b.lg.Info("range reads are waiting for --max-range-bytes-in-flight; starting a GC in case responses gRPC dropped hold bytes",
			zap.Int("waiting", b.waiting), zap.Int64("bytes-in-flight", b.inFlight), zap.Int64("limit", b.limit))
		go b.collect()
	}
	b.armCollect()
}

func (b *rangeBudget) append(t *rangeTicket) {
	t.listed = true
	t.prev = b.newest
	if b.newest != nil {
		b.newest.next = t
	} else {
		b.oldest = t
	}
	b.newest = t
}

func (b *rangeBudget) remove(t *rangeTicket) {
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		b.oldest = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	} else {
		b.newest = t.prev
	}
	t.prev, t.next = nil, nil
}

// The budget's families: what an operator needs to tell a member
// throttling its large reads (waits growing) from one that is not.
var (
	rangeBytesInFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "metastore", Subsystem: "range", Name: "bytes_in_flight",
		Help: "Bytes of Range and read-only Txn responses being built or sent, charged to --max-range-bytes-in-flight.",
	})
	// Both are counted when the request's bytes come back.
	rangeBudgetWaits = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "metastore", Subsystem: "range", Name: "budget_waits_total",
		Help: "Range and read-only Txn requests that waited for --max-range-bytes-in-flight bytes to be freed.",
	})
	rangeBudgetWaitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "metastore", Subsystem: "range", Name: "budget_wait_seconds",
		Help:    "How long in all a Range or read-only Txn request that waited waited for --max-range-bytes-in-flight bytes.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	})
	rangeBudgetCollections = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "metastore", Subsystem: "range", Name: "budget_collections_total",
		Help: "GCs started because Range or read-only Txn requests waited for --max-range-bytes-in-flight bytes (to collect responses gRPC dropped without freeing).",
	})
)

func init() {
	metrics.MustRegister(rangeBytesInFlight, rangeBudgetWaits, rangeBudgetWaitSeconds, rangeBudgetCollections)
}

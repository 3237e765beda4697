package gateway

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"

	"github.com/metastore/metastore/testkit"
)

const kib = 1 << 10

// budgetProbe watches a rangeBudget: it checks the bound at every change
// (the bytes in flight never exceed the limit plus what the oldest ticket
// holds), records the peak, and reports each ticket that starts waiting.
type budgetProbe struct {
	t      *testing.T
	b      *rangeBudget
	waits  chan *rangeTicket // tickets that started waiting, in order
	idle   chan struct{}     // signalled whenever nothing is in flight
	peak   int64
	seen   map[*rangeTicket]bool // waiting tickets already reported
	broken bool
}

func probeBudget(t *testing.T, b *rangeBudget) *budgetProbe {
	p := &budgetProbe{t: t, b: b, waits: make(chan *rangeTicket, 100), idle: make(chan struct{}, 1), seen: map[*rangeTicket]bool{}}
	b.observe = p.observe
	return p
}

func (p *budgetProbe) observe() { // under b.mu
	b := p.b
	p.peak = max(p.peak, b.inFlight)
	var oldest int64
	if b.oldest != nil {
		oldest = b.oldest.held
	}
	if b.inFlight-oldest > b.limit && !p.broken {
		p.broken = true
		p.t.Errorf("%d bytes in flight: more than the limit %d plus the oldest's %d", b.inFlight, b.limit, oldest)
	}
	for o := b.oldest; o != nil; o = o.next {
		if o.want > 0 && !p.seen[o] {
			p.seen[o] = true
			p.waits <- o
		} else if o.want == 0 {
			delete(p.seen, o)
		}
	}
	if b.inFlight == 0 {
		select {
		case p.idle <- struct{}{}:
		default:
		}
	}
}

// waiting returns the next ticket that started waiting.
func (p *budgetProbe) waiting() *rangeTicket {
	p.t.Helper()
	select {
	case t := <-p.waits:
		return t
	case <-time.After(wait):
		p.t.Fatal("no ticket started waiting")
		return nil
	}
}

func (p *budgetProbe) inFlight() int64 {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	return p.b.inFlight
}

// charging runs t.charge(ctx, n) in a goroutine; the channel gets its
// result.
func charging(ctx context.Context, t *rangeTicket, n int64) <-chan error {
	done := make(chan error, 1)
	go func() { done <- t.charge(ctx, n) }()
	return done
}

func pending(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("the charge returned (%v) while it should wait", err)
	default:
	}
}

func result(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(wait):
		t.Fatal("the charge still waits")
		return nil
	}
}

// A read whose result stays small takes nothing and never waits; past
// untrackedRangeBytes it takes all it built, a chunk at a time, and gives
// it all back when released.
func TestRangeBudgetSmallReadsTakeNothing(t *testing.T) {
	b := newRangeBudget(1024*kib, zap.NewNop())
	p := probeBudget(t, b)
	ctx := context.Background()
	small := b.ticket()
	if err := small.charge(ctx, untrackedRangeBytes); err != nil || p.inFlight() != 0 || small.held != 0 {
		t.Fatalf("a read of %d bytes: %v, %d in flight, %d held", untrackedRangeBytes, err, p.inFlight(), small.held)
	}
	small.release()
	big := b.ticket()
	if err := big.charge(ctx, untrackedRangeBytes+1); err != nil {
		t.Fatal(err)
	}
	if got := p.inFlight(); got != rangeChargeChunk || big.held != rangeChargeChunk {
		t.Fatalf("%d in flight, %d held after %d bytes; want a chunk, %d", got, big.held, untrackedRangeBytes+1, rangeChargeChunk)
	}
	for _, n := range []int64{200 * kib, rangeChargeChunk} { // within what it holds
		if err := big.charge(ctx, n); err != nil || p.inFlight() != rangeChargeChunk {
			t.Fatalf("charge %d: %v, %d in flight", n, err, p.inFlight())
		}
	}
	if err := big.charge(ctx, 700*kib); err != nil || p.inFlight() != 700*kib {
		t.Fatalf("charge 700 KiB: %v, %d in flight", err, p.inFlight())
	}
	big.release()
	big.release() // only the first counts
	if got := p.inFlight(); got != 0 {
		t.Fatalf("%d in flight after the release", got)
	}
}

// The oldest ticket takes what it needs past the limit (one response
// larger than the whole budget is still answered); a younger one waits
// for the bytes to come back, and then gets them.
func TestRangeBudgetOldestOverdraftsOthersWait(t *testing.T) {
	b := newRangeBudget(1024*kib, zap.NewNop())
	p := probeBudget(t, b)
	ctx := context.Background()
	a, c, d := b.ticket(), b.ticket(), b.ticket()
	if err := a.charge(ctx, 3072*kib); err != nil {
		t.Fatal(err)
	}
	done := charging(ctx, c, 512*kib)
	if p.waiting() != c {
		t.Fatal("another ticket waits")
	}
	pending(t, done)
	a.release()
	if err := result(t, done); err != nil {
		t.Fatal(err)
	}
	if got := p.inFlight(); got != 512*kib {
		t.Fatalf("%d in flight, want the waiter's 512 KiB", got)
	}
	if err := d.charge(ctx, 512*kib); err != nil || p.inFlight() != 1024*kib { // fits exactly
		t.Fatalf("a charge within the limit: %v, %d in flight", err, p.inFlight())
	}
	c.release()
	d.release()
}

// Waiters are served in the order they first took bytes: one that would
// fit waits behind an older one that does not, so large reads are not
// starved by small ones. Each request that waited is counted once its
// bytes are back, with how long it waited.
func TestRangeBudgetFirstComeFirstServed(t *testing.T) {
	b := newRangeBudget(1024*kib, zap.NewNop())
	p := probeBudget(t, b)
	waits, waitTimes := testutil.ToFloat64(rangeBudgetWaits), histogramCount(t, rangeBudgetWaitSeconds)
	ctx := context.Background()
	a, large, small := b.ticket(), b.ticket(), b.ticket()
	if err := a.charge(ctx, 768*kib); err != nil {
		t.Fatal(err)
	}
	largeDone := charging(ctx, large, 512*kib)
	if p.waiting() != large {
		t.Fatal("another ticket waits")
	}
	smallDone := charging(ctx, small, 256*kib) // 768 + 256 fits, but large waits ahead
	if p.waiting() != small {
		t.Fatal("another ticket waits")
	}
	pending(t, largeDone)
	pending(t, smallDone)
	a.release()
	if err := result(t, largeDone); err != nil {
		t.Fatal(err)
	}
	if err := result(t, smallDone); err != nil {
		t.Fatal(err)
	}
	if got := p.inFlight(); got != 768*kib {
		t.Fatalf("%d in flight, want 512 + 256 KiB", got)
	}
	large.release()
	small.release()
	if got := testutil.ToFloat64(rangeBudgetWaits) - waits; got != 2 {
		t.Fatalf("%v requests counted as waiting, want 2", got)
	}
	if got := histogramCount(t, rangeBudgetWaitSeconds) - waitTimes; got != 2 {
		t.Fatalf("%d wait times observed, want 2", got)
	}
}

func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// A waiter whose client goes away stops waiting with etcd's canceled
// error, gives back what it held at once, and no longer holds up the
// waiters behind it; one whose deadline has passed gets etcd's deadline
// error without waiting.
func TestRangeBudgetClientGoneReleases(t *testing.T) {
	b := newRangeBudget(1024*kib, zap.NewNop())
	p := probeBudget(t, b)
	ctx := context.Background()
	a, gone, next := b.ticket(), b.ticket(), b.ticket()
	if err := a.charge(ctx, 512*kib); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	if err := gone.charge(cctx, 256*kib); err != nil {
		t.Fatal(err)
	}
	goneDone := charging(cctx, gone, 1024*kib) // 512 + 256 + 768 > 1024
	if p.waiting() != gone {
		t.Fatal("another ticket waits")
	}
	nextDone := charging(ctx, next, 256*kib) // fits, but waits behind gone
	if p.waiting() != next {
		t.Fatal("another ticket waits")
	}
	cancel()
	if err := result(t, goneDone); err != rpctypes.ErrGRPCCanceled {
		t.Fatalf("canceled while waiting: %v, want %v", err, rpctypes.ErrGRPCCanceled)
	}
	if err := result(t, nextDone); err != nil {
		t.Fatal(err)
	}
	gone.release() // as the handler does on the error
	if got := p.inFlight(); got != 768*kib {
		t.Fatalf("%d in flight, want a's 512 and next's 256 KiB", got)
	}
	late, stop := context.WithDeadline(ctx, time.Unix(0, 0))
	defer stop()
	if err := b.ticket().charge(late, 2048*kib); err != rpctypes.ErrGRPCDeadlineExceeded {
		t.Fatalf("past its deadline: %v, want %v", err, rpctypes.ErrGRPCDeadlineExceeded)
	}
	a.release()
	next.release()
}

// A waiter that wants more than the whole budget proceeds once it is the
// oldest: nothing deadlocks.
func TestRangeBudgetWaiterBecomesOldest(t *testing.T) {
	b := newRangeBudget(1024*kib, zap.NewNop())
	p := probeBudget(t, b)
	ctx := context.Background()
	a, huge := b.ticket(), b.ticket()
	if err := a.charge(ctx, 768*kib); err != nil {
		t.Fatal(err)
	}
	if err := huge.charge(ctx, 256*kib); err != nil {
		t.Fatal(err)
	}
	done := charging(ctx, huge, 8192*kib)
	if p.waiting() != huge {
		t.Fatal("another ticket waits")
	}
	a.release()
	if err := result(t, done); err != nil {
		t.Fatal(err)
	}
	if got := p.inFlight(); got != 8192*kib {
		t.Fatalf("%d in flight, want the 8 MiB of the only ticket", got)
	}
	huge.release()
}

// Many reads charging and releasing at once, some canceled: every one
// ends, the bound holds at every step (the probe checks it), and nothing
// is left in flight.
func TestRangeBudgetConcurrentReads(t *testing.T) {
	b := newRangeBudget(1024*kib, zap.NewNop())
	p := probeBudget(t, b)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), 1))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tk := b.ticket()
			defer tk.release()
			total := r.Int64N(3072 * kib)
			for built := int64(0); built < total; built += r.Int64N(128 * kib) {
				if i%7 == 0 && built > total/2 {
					cancel()
				}
				if err := tk.charge(ctx, built); err != nil {
					if err != rpctypes.ErrGRPCCanceled || i%7 != 0 {
						t.Errorf("read %d: %v", i, err)
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := p.inFlight(); got != 0 {
		t.Fatalf("%d bytes left in flight", got)
	}
	t.Logf("peak %d KiB in flight", p.peak/kib)
}

// While reads wait for bytes the budget starts a GC, since responses gRPC
// dropped give theirs back only then: collectAfter into the wait, then at
// most every collectEvery, and none once nothing waits.
func TestRangeBudgetCollectsWhileReadsWait(t *testing.T) {
	b := newRangeBudget(1024*kib, zap.NewNop())
	clock := testkit.NewFakeClock(time.Unix(1000, 0))
	collected := make(chan struct{}, 10)
	b.setClock(clock)
	b.collect = func() { collected <- struct{}{} }
	p := probeBudget(t, b)
	ctx := context.Background()
	// Collections started: counted under the budget's lock when started.
	base := testutil.ToFloat64(rangeBudgetCollections)
	started := func() int { return int(testutil.ToFloat64(rangeBudgetCollections) - base) }
	ran := func() {
		t.Helper()
		select {
		case <-collected:
		case <-time.After(wait):
			t.Fatal("the collection started did not run")
		}
	}

	a, c := b.ticket(), b.ticket()
	if err := a.charge(ctx, 2048*kib); err != nil {
		t.Fatal(err)
	}
	if clock.Pending() != 0 {
		t.Fatal("a collect timer runs while nothing waits")
	}
	done := charging(ctx, c, 512*kib)
	p.waiting()
	clock.Advance(collectAfter - time.Millisecond)
	if started() != 0 {
		t.Fatal("collected before the wait reached collectAfter")
	}
	clock.Advance(time.Millisecond)
	if started() != 1 {
		t.Fatalf("%d collections started at collectAfter, want 1", started())
	}
	ran()
	clock.Advance(collectEvery - time.Millisecond)
	if started() != 1 {
		t.Fatalf("%d collections started, want 1 within collectEvery", started())
	}
	clock.Advance(time.Millisecond)
	if started() != 2 {
		t.Fatalf("%d collections started at collectAfter+collectEvery, want 2", started())
	}
	ran()
	pending(t, done)

	a.release()
	if err := result(t, done); err != nil {
		t.Fatal(err)
	}
	clock.Advance(3 * collectEvery)
	if started() != 2 {
		t.Fatalf("%d collections started, want 2: none with nothing waiting", started())
	}
	if clock.Pending() != 0 {
		t.Fatal("the collect timer still runs with nothing waiting")
	}
	c.release()
	if len(collected) != 0 {
		t.Fatalf("%d more collections", len(collected))
	}
}

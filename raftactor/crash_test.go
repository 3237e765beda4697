package raftactor_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
)

// panicOnApply makes the store panic, once, on the nth Apply that carries
// a local proposal (an entry with a Reply), and records that batch's keys.
type panicOnApply struct {
	nth    int64
	seen   atomic.Int64
	done   atomic.Bool
	mu     sync.Mutex
	keys   []string
	maxIdx uint64
}

func (p *panicOnApply) wrap(props *actor.Props) *actor.Props {
	return testkit.PanicOn(props, func(m any) bool {
		a, ok := m.(*storeactor.Apply)
		if !ok || p.done.Load() {
			return false
		}
		local := false
		for _, e := range a.Entries {
			local = local || e.Reply != nil
		}
		if !local || p.seen.Add(1) != p.nth {
			return false
		}
		p.done.Store(true)
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, e := range a.Entries {
			if e.Req != nil && e.Req.Put != nil {
				p.keys = append(p.keys, string(e.Req.Put.Key))
			}
			p.maxIdx = e.Index
		}
		return true
	})
}

func (p *panicOnApply) lastIndex() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxIdx
}

func (p *panicOnApply) batch() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.keys...)
}

// The store, under the Guardian, panics while applying one batch of
// proposals. The Guardian restarts it; it reloads its state from pebble,
// finds the gap at the next Apply and asks the raft actor to replay, which
// sends the entries again with their waiters. So every proposal is
// answered (those in the lost batch too), every acknowledged write is
// readable, and the node keeps serving.
func TestStoreCrashRestartLosesNoWrite(t *testing.T) {
	pan := &panicOnApply{nth: 3}
	var tap *testkit.Tap
	n := startNode(t, nodeOpts{guardian: true, storeWrap: pan.wrap, raftWrap: func(p *actor.Props) *actor.Props {
		return tap.Props(p)
	}, beforeStart: func(kit *testkit.Kit) {
		tap = kit.NewTap(testkit.WithFilter(func(m any) bool { _, ok := m.(*storeactor.Replay); return ok }))
	}})
	ev := n.kit.CaptureEvents()

	const goroutines, each = 8, 30
	type ack struct {
		key string
		rev int64
	}
	acks := make(chan ack, goroutines*each)
	errs := make(chan error, goroutines*each)
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				key := fmt.Sprintf("g%d/%02d", g, i)
				res, err := await(n.send(putReq(key, key)), wait)
				if err == nil {
					err = res.Err
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", key, err)
					return
				}
				acks <- ack{key, res.Resp.(*pb.PutResponse).Header.Revision}
			}
		}(g)
	}

	se := ev.ExpectSupervisorEvent(wait)
	if _, ok := se.Reason.(testkit.InjectedPanic); !ok || !se.Child.Equal(n.storePID) || se.Directive != actor.RestartDirective {
		t.Fatalf("supervisor event %+v", se)
	}
	// The node keeps serving: a write after the crash is answered. (It
	// also lets the restarted store notice the gap when every client in
	// the lost batch is waiting and nothing else is in flight; see
	// TestLostLastBatchIsReplayedWithoutNewTraffic.)
	after := n.send(putReq("after-crash", "1"))

	wg.Wait()
	close(acks)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if res, err := await(after, wait); err != nil || res.Err != nil {
		t.Fatalf("proposal after the crash: %v %v", err, res.Err)
	}
	// The restarted store asked for the lost entries again, once.
	if r := testkit.ExpectTapped[*storeactor.Replay](tap, wait); r.From > pan.lastIndex() {
		t.Fatalf("replay from %d, after the lost batch (up to %d)", r.From, pan.lastIndex())
	}
	tap.ExpectNoMsg(0)

	byRev := map[int64]string{}
	acked := map[string]bool{}
	for a := range acks {
		if other, dup := byRev[a.rev]; dup {
			t.Errorf("revision %d acknowledged for %s and %s", a.rev, other, a.key)
		}
		byRev[a.rev] = a.key
		acked[a.key] = true
		v, rev, ok := n.get(a.key)
		if !ok || v != a.key || rev != a.rev {
			t.Errorf("acknowledged %s@%d reads as %q@%d (found %v)", a.key, a.rev, v, rev, ok)
		}
	}
	if len(acked) != goroutines*each {
		t.Errorf("%d of %d proposals acknowledged", len(acked), goroutines*each)
	}
	lost := pan.batch()
	if len(lost) == 0 {
		t.Fatal("the injected panic hit no proposal")
	}
	for _, k := range lost {
		if !acked[k] {
			t.Errorf("proposal %s from the crashed batch was never answered", k)
		}
	}
	t.Logf("crashed batch had %d proposals; %d acknowledged in all", len(lost), len(acked))
	if want := int64(goroutines*each + 2); n.reader.View().Rev != want {
		t.Errorf("store revision %d, want %d", n.reader.View().Rev, want)
	}
	if ev.SupervisorEvents() != 1 {
		t.Errorf("%d supervisor events, want 1", ev.SupervisorEvents())
	}
	select {
	case err := <-n.fatal:
		t.Fatalf("guardian reported a fatal failure: %v", err)
	default:
	}
	// Still serving, reads included.
	if rev := n.put("final", "1"); rev != int64(goroutines*each+3) {
		t.Fatalf("final put at revision %d", rev)
	}
	if err := <-n.readIndex(); err != nil {
		t.Fatal(err)
	}
}

// When the batch the store lost is the last one (every client is waiting
// on it and no other write follows), nothing makes the restarted store
// notice the gap: its clients, and linearizable reads behind them, must
// still be answered.
func TestLostLastBatchIsReplayedWithoutNewTraffic(t *testing.T) {
	pan := &panicOnApply{nth: 2}
	n := startNode(t, nodeOpts{guardian: true, storeWrap: pan.wrap})
	ev := n.kit.CaptureEvents()
	n.put("first", "1")
	solo := n.send(putReq("solo", "1"))
	ev.ExpectSupervisorEvent(wait)
	ri := n.readIndex()
	// Let raft tick (heartbeats, elections timeouts): nothing else happens.
	for i := 0; i < 30; i++ {
		n.clock.Advance(100 * time.Millisecond)
	}
	if res, err := await(solo, 2*time.Second); err != nil || res.Err != nil {
		t.Fatalf("proposal in the lost batch: %v %v", err, res.Err)
	}
	select {
	case err := <-ri:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("read index never answered")
	}
}

// Every Apply panics: past MaxRestarts the Guardian stops the store and
// reports it through OnFatal.
func TestGuardianReportsStoreThatKeepsFailing(t *testing.T) {
	n := startNode(t, nodeOpts{guardian: true, storeWrap: func(p *actor.Props) *actor.Props {
		return testkit.PanicOn(p, func(m any) bool {
			a, ok := m.(*storeactor.Apply)
			if !ok {
				return false
			}
			for _, e := range a.Entries {
				if e.Req != nil {
					return true
				}
			}
			return false
		})
	}})
	ev := n.kit.CaptureEvents()
	for i := 0; i <= actors.MaxRestarts; i++ {
		n.send(putReq(fmt.Sprintf("k%d", i), "v"))
		ev.ExpectSupervisorEvent(wait)
	}
	select {
	case err := <-n.fatal:
		t.Logf("OnFatal: %v", err)
	case <-time.After(wait):
		t.Fatalf("no OnFatal after %d failures", actors.MaxRestarts+1)
	}
}

// A panic in the raft actor: the guardian restarts it, and the clients it
// was serving are answered, not left to time out: proposals in the saved
// log when they are applied, the others with "leader changed" (and those
// that arrive before the restarted node is leader again, "no leader").
func TestRaftRestartAnswersItsClients(t *testing.T) {
	n := startNode(t, nodeOpts{guardian: true, raftWrap: func(p *actor.Props) *actor.Props {
		return testkit.PanicOn(p, func(m any) bool { _, ok := m.(*raftactor.Status); return ok })
	}})
	ev := n.kit.CaptureEvents()

	const goroutines, each = 8, 40
	var acked, leaderChanged atomic.Int64
	errs := make(chan error, goroutines*each)
	revs := make(chan int64, goroutines*each)
	var started sync.WaitGroup
	started.Add(goroutines)
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if i == 5 {
					started.Done()
				}
				key := fmt.Sprintf("g%d/%02d", g, i)
				res, err := await(n.send(putReq(key, key)), wait)
				switch {
				case err != nil:
					errs <- fmt.Errorf("%s: %w", key, err) // never answered
				case errors.Is(res.Err, rpctypes.ErrGRPCLeaderChanged), errors.Is(res.Err, rpctypes.ErrGRPCNoLeader):
					leaderChanged.Add(1) // retryable: the restarted node was not leader yet, or lost it
				case res.Err != nil:
					errs <- fmt.Errorf("%s: %w", key, res.Err)
				default:
					acked.Add(1)
					revs <- res.Resp.(*pb.PutResponse).Header.Revision
				}
			}
		}(g)
	}
	started.Wait()
	n.kit.Root().Send(n.raftPID, &raftactor.Status{Reply: make(chan raftactor.StatusInfo, 1)})
	if se := ev.ExpectSupervisorEvent(wait); !se.Child.Equal(n.raftPID) {
		t.Fatalf("supervisor event %+v", se)
	}
	wg.Wait()
	close(errs)
	close(revs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[int64]bool{}
	for r := range revs {
		if seen[r] {
			t.Errorf("revision %d acknowledged twice", r)
		}
		seen[r] = true
	}
	t.Logf("%d acknowledged, %d answered with a retryable error", acked.Load(), leaderChanged.Load())
	// Still serving, reads included, once it leads again.
	n.waitLeader()
	n.put("after", "1")
	if err := <-n.readIndex(); err != nil {
		t.Fatal(err)
	}
}

// Issue 19, bug 3: the store's report of a batch is lost (as when the
// store stops between applying a batch and reporting it). Raft replays the
// batch; the store, which skips what it has applied, must still say how
// far it is, or raft replays again and again and finally stops the member
// as if the entry were poison.
func TestLostAppliedReportIsNotAPoisonEntry(t *testing.T) {
	var armed atomic.Bool
	fatal := make(chan error, 4)
	n := startNode(t, nodeOpts{
		raftWrap: func(p *actor.Props) *actor.Props {
			return p.Clone(actor.WithReceiverMiddleware(func(next actor.ReceiverFunc) actor.ReceiverFunc {
				return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
					if a, ok := env.Message.(*storeactor.Applied); ok && !a.Restarted && armed.CompareAndSwap(true, false) {
						return // lost on its way
					}
					next(c, env)
				}
			}))
		},
		raftConfig: func(c *raftactor.Config) { c.OnFatal = func(err error) { fatal <- err } },
	})
	n.put("a", "1")
	armed.Store(true)
	n.put("b", "1") // answered by the store; its report is lost
	// One replay period: raft sends the batch again; the store must report.
	for range 10 {
		n.clock.Advance(100 * time.Millisecond)
	}
	deadline := time.Now().Add(wait)
	for n.status().Reported < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("the store never reported the replayed batch: %+v", n.status())
		}
		time.Sleep(time.Millisecond)
	}
	// Nothing is left to replay: time passes without a poison entry.
	for range 100 {
		n.clock.Advance(100 * time.Millisecond)
	}
	n.status()
	select {
	case err := <-fatal:
		t.Fatalf("the member stopped: %v", err)
	default:
	}
	if v, _, ok := n.get("b"); !ok || v != "1" {
		t.Fatalf("b = %q %v", v, ok)
	}
	n.put("c", "1")
}

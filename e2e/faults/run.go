//go:build linux

package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/e2e/watchcheck"
)

// plan is one run of the suite: cycles of faults, each cycle the next
// fault of the list (so a short run covers each kind), with the victims
// and durations drawn from the seed.
type plan struct {
	faults []fault
	cycles int
	// checkTimeout bounds porcupine's search; a history it cannot decide
	// in time is reported, not passed.
	checkTimeout time.Duration
	// long selects the long runs' fault durations (see fault.hold).
	long bool
	// leaseTTL is the lease keepers' TTL, in seconds.
	leaseTTL int64
}

const (
	recoverWithin = 30 * time.Second // after a fault ends, until the cluster serves again
	maxWatchers   = 4                // open at once
)

// seedEnv replays a run's schedule: which fault, which member, how long,
// and every client's choice of operations. Timing is the machine's, so a
// replay makes the same faults, not the same interleavings.
const seedEnv = "METASTORE_FAULTS_SEED"

func seed(t testing.TB) uint64 {
	if s := os.Getenv(seedEnv); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", seedEnv, s, err)
		}
		return v
	}
	return uint64(time.Now().UnixNano())
}

// workload is every client of a run and what they recorded.
type workload struct {
	clk      clock
	kv       history
	locks    lockLog
	leases   leaseLog
	watchers []*watcher // every watcher opened, stopped ones included
	active   []*watcher
	ctx      context.Context
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

func (w *workload) spawn(f func(ctx context.Context)) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		f(w.ctx)
	}()
}

// startWorkload starts, per member, a KV client, a lock holder and a
// lease keeper that talk to that member only (so a member cut off or
// paused keeps its clients), and two KV clients that use every member
// (and fail over, as clientv3 does).
func startWorkload(t testing.TB, c *cluster, seed uint64, leaseTTL int64) *workload {
	w := &workload{clk: clock{start: time.Now()}}
	w.ctx, w.stop = context.WithCancel(context.Background())
	stream := uint64(100)
	rng := func() *rand.Rand { stream++; return rand.New(rand.NewPCG(seed, stream)) }
	id := 0
	kv := func(endpoints ...string) {
		cl := &kvClient{id: id, cli: newClient(t, endpoints...), rng: rng(), clk: w.clk, h: &w.kv,
			seen: map[string]*string{}}
		id++
		w.spawn(cl.run)
	}
	for i, m := range c.members {
		kv(m.Endpoint())
		h := &lockHolder{name: m.Name, cli: newClient(t, m.Endpoint()), rng: rng(), log: &w.locks}
		w.spawn(h.run)
		k := &leaseKeeper{name: c.name(i), ttl: leaseTTL, cli: newClient(t, m.Endpoint()), rng: rng(), clk: w.clk, log: &w.leases}
		w.spawn(k.run)
	}
	kv(c.endpoints()...)
	kv(c.endpoints()...)
	return w
}

// churnWatchers now and then stops the oldest watcher, and opens new
// ones — on one member or through all of them, from now or from a little
// before — so that watchers are opened and resumed across every kind of
// fault while at most maxWatchers run at once.
func (w *workload) churnWatchers(t testing.TB, c *cluster, rng *rand.Rand, cli *clientv3.Client) {
	if len(w.active) > 1 && rng.IntN(4) == 0 {
		w.active[0].w.Stop()
		w.active = w.active[1:]
	}
	if len(w.active) >= maxWatchers || (len(w.active) > 0 && rng.IntN(2) == 0) {
		return
	}
	rev, err := c.revision(cli)
	if err != nil {
		return
	}
	if m := rng.IntN(len(c.members) + 1); m < len(c.members) {
		cli = newClient(t, c.members[m].Endpoint())
	}
	// Not the workload's context: watchers outlive the workload, until
	// they have caught up with the end of the history.
	wt := openWatcher(context.Background(), cli, rng, fmt.Sprintf("w%d", len(w.watchers)), rev)
	t.Cleanup(wt.w.Stop)
	w.watchers = append(w.watchers, wt)
	w.active = append(w.active, wt)
}

// run starts a cluster and its workload, makes the plan's faults, and
// checks everything recorded. It stops by itself: each cycle is bounded,
// and a cluster that does not recover from a fault ends the run.
func run(t *testing.T, p plan) {
	seed := seed(t)
	t.Logf("seed %d (%s=%d replays this schedule), %d cycles", seed, seedEnv, seed, p.cycles)
	out := artifacts(t)
	journal := newJournal(t, filepath.Join(out, "schedule.log"))
	rng := rand.New(rand.NewPCG(seed, 1))

	// Snapshots every few hundred entries, and a log kept only 100
	// entries past them, so that members restarted behind catch up from a
	// snapshot as well as from the log.
	c := startCluster(t, "--snapshot-count=300", "--snapshot-catchup-entries=100")
	c.keepLogs(out)
	w := startWorkload(t, c, seed, p.leaseTTL)
	defer w.stop()
	watchRng := rand.New(rand.NewPCG(seed, 2))
	watchCli := newClient(t, c.endpoints()...)

	failed := false
	for i := 0; i < p.cycles && !failed; i++ {
		w.churnWatchers(t, c, watchRng, watchCli)
		time.Sleep(between(rng, 300*time.Millisecond, 800*time.Millisecond))
		lead, err := c.leader(recoverWithin)
		if err != nil {
			t.Errorf("cycle %d: no leader before the fault: %v (seed %d)", i, err, seed)
			break
		}
		f := p.faults[i%len(p.faults)]
		what, heal := f.inject(c, lead, rng)
		hold := f.hold(rng, p.long)
		journal.log("cycle %d: %s: %s (leader was %s), for %v", i, f.name, what, c.name(lead), hold)
		time.Sleep(hold)
		if err := heal(); err != nil {
			t.Errorf("cycle %d: ending %q: %v (seed %d)", i, what, err, seed)
			failed = true
		}
		start := time.Now()
		if err := c.waitHealthy(recoverWithin); err != nil {
			t.Errorf("cycle %d: the cluster did not recover within %v of the end of %q: %v (seed %d)",
				i, recoverWithin, what, err, seed)
			failed = true
		}
		if now, err := c.leader(time.Second); err == nil {
			journal.log("cycle %d: healthy %v after the fault ended, leader %s", i, time.Since(start).Round(time.Millisecond), c.name(now))
		}
	}
	w.stop()
	w.wg.Wait()
	if failed {
		return
	}
	check(t, c, w, p, seed, out)
}

// check reads the history and checks every recording against it.
func check(t *testing.T, c *cluster, w *workload, p plan, seed uint64, out string) {
	t.Helper()
	cli := newClient(t, c.endpoints()...)
	last, err := c.revision(cli)
	if err != nil {
		t.Fatalf("final revision: %v", err)
	}
	var violations []error
	to := last
	for _, wt := range w.active {
		if err := wt.await(last, recoverWithin); err != nil {
			violations = append(violations, err)
		}
	}
	for _, wt := range w.watchers {
		to = max(to, wt.rec.LastSeen())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h, err := watchcheck.CollectTruth(ctx, cli, 1).History(ctx, to)
	if err != nil {
		t.Fatalf("reading the history up to revision %d: %v", to, err)
	}
	report := func(what string, err error) {
		if err != nil {
			violations = append(violations, fmt.Errorf("%s: %w", what, err))
		}
	}
	report("history", h.Consistent(nil))
	report("acknowledged writes", h.CheckWrites(w.kv.acked, false))
	var recs []*watchcheck.Recording
	for _, wt := range w.watchers {
		recs = append(recs, wt.rec)
	}
	report("watches", watchcheck.CheckAll(h, recs...))
	report("locks", errors.Join(checkLocks(h, w.locks.acqs)...))
	report("leases", errors.Join(checkLeases(w.leases.lives, w.clk)...))

	res, bad, info := checkLinearizable(w.kv.ops, p.checkTimeout)
	switch res {
	case porcupine.Illegal:
		path := filepath.Join(out, "kv-history.html")
		if err := porcupine.VisualizePath(kvModel, info, path); err != nil {
			t.Logf("drawing the history: %v", err)
		}
		violations = append(violations, fmt.Errorf("KV history not linearizable for keys %v (drawn in %s)", bad, path))
	case porcupine.Unknown:
		violations = append(violations, fmt.Errorf("porcupine could not decide the KV history within %v", p.checkTimeout))
	}

	unknown := 0
	for _, op := range w.kv.ops {
		if op.Output.(kvOutput).Unknown {
			unknown++
		}
	}
	t.Logf("checked: %d revisions, %d KV operations (%d of unknown outcome), %d lock acquisitions, %d fenced writes (%d refused: session gone), %d leases, %d watchers",
		h.To, len(w.kv.ops), unknown, len(w.locks.acqs), w.locks.writes, w.locks.lost, len(w.leases.lives), len(w.watchers))
	for _, v := range violations {
		t.Errorf("VIOLATION (seed %d): %v", seed, v)
	}
}

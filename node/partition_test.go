package node_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/node"
	"github.com/metastore/metastore/node/nodetest"
)

// In-process three-member clusters whose members are partitioned through
// Config.PeerCut: raft messages between members on different sides of a
// test-controlled partition table are dropped by the transport.

const (
	// heartbeat and election are nodetest.Config's raft timings.
	heartbeat = 100 * time.Millisecond
	election  = time.Second
	opTimeout = 3 * time.Second // every client request's deadline
	// slack is how long past its deadline a request may take to return.
	slack = time.Second
)

// partition is the table every member's PeerCut reads: each member's side.
type partition struct {
	mu   sync.Mutex
	side map[uint64]int
}

func (p *partition) cut(self, peer uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.side[self] != p.side[peer]
}

// isolate puts id alone on side 1.
func (p *partition) isolate(id uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.side[id] = 1
}

func (p *partition) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range p.side {
		p.side[id] = 0
	}
}

type member struct {
	name string
	id   uint64
	n    *node.Node
	cli  *clientv3.Client // this member only
	conn *grpc.ClientConn // raw gRPC to this member (no clientv3 retries)
	kv   pb.KVClient
	addr string
}

type cluster struct {
	t       *testing.T
	part    *partition
	members []*member
}

// startCluster starts three members in the test process, on loopback
// ports of their own, and waits until each serves.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	const token = "partition-test"
	c := &cluster{t: t, part: &partition{side: map[uint64]int{}}}
	names := []string{"m1", "m2", "m3"}
	peers := nodetest.Peers(t, names...)
	var cfgs []node.Config
	for _, name := range names {
		id := node.MemberID(peers[name], token)
		c.part.side[id] = 0
		c.members = append(c.members, &member{name: name, id: id})
		cfg := nodetest.Member(name, peers, token)
		cfg.PeerCut = func(peer uint64) bool { return c.part.cut(id, peer) }
		cfgs = append(cfgs, cfg)
	}
	for i, n := range nodetest.StartAll(t, cfgs...) {
		m := c.members[i]
		m.n, m.addr, m.cli = n, n.ClientAddrs()[0], nodetest.Client(t, n)
		conn, err := grpc.NewClient(m.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		m.conn, m.kv = conn, pb.NewKVClient(conn)
	}
	return c
}

func ctx3() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

// leaderOf asks m who leads (0: nobody, or m did not answer).
func (c *cluster) leaderOf(m *member) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, err := m.cli.Status(ctx, m.addr)
	if err != nil {
		return 0
	}
	return st.Leader
}

// waitLeader waits until every member of ms names the same leader, one of
// ms, other than not; it returns that member and how long it took.
func (c *cluster) waitLeader(ms []*member, not uint64, within time.Duration) (*member, time.Duration) {
	c.t.Helper()
	start := time.Now()
	for {
		var lead uint64
		agree := true
		for _, m := range ms {
			l := c.leaderOf(m)
			if l == 0 || l == not || (lead != 0 && l != lead) {
				agree = false
				break
			}
			lead = l
		}
		if agree {
			for _, m := range ms {
				if m.id == lead {
					return m, time.Since(start)
				}
			}
		}
		if time.Since(start) > within {
			var seen []string
			for _, m := range ms {
				seen = append(seen, fmt.Sprintf("%s(%x)->%x", m.name, m.id, c.leaderOf(m)))
			}
			c.t.Fatalf("no agreed leader among %v within %v (not %x)", seen, within, not)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *cluster) others(x *member) []*member {
	var out []*member
	for _, m := range c.members {
		if m != x {
			out = append(out, m)
		}
	}
	return out
}

// retryable reports whether err is one of the errors etcd gives for a
// request a member cannot serve for lack of a leader / quorum.
func retryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch status.Code(err) {
	case codes.DeadlineExceeded:
		return true
	}
	switch rpctypes.ErrorDesc(err) {
	case rpctypes.ErrNoLeader.Error(), rpctypes.ErrTimeout.Error(), rpctypes.ErrLeaderChanged.Error(),
		rpctypes.ErrTimeoutDueToLeaderFail.Error(), rpctypes.ErrTimeoutDueToConnectionLost.Error():
		return true
	}
	return false
}

func describe(err error) string {
	if err == nil {
		return "ok"
	}
	if s, ok := status.FromError(err); ok {
		return fmt.Sprintf("%s: %s", s.Code(), s.Message())
	}
	return err.Error()
}

// timed runs f with a fresh opTimeout context and checks it returned by
// the deadline plus slack.
func timed(t *testing.T, what string, f func(ctx context.Context) error) (error, time.Duration) {
	t.Helper()
	ctx, cancel := ctx3()
	defer cancel()
	start := time.Now()
	err := f(ctx)
	d := time.Since(start)
	if d > opTimeout+slack {
		t.Errorf("%s returned after %v (deadline %v)", what, d, opTimeout)
	}
	return err, d
}

// converge waits until every member has applied at least the revision a
// linearizable read through via sees, then compares HashKV at that
// revision on every member.
func (c *cluster) converge(via *member) int64 {
	c.t.Helper()
	var rev int64
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := ctx3()
		r, err := via.cli.Get(ctx, "converge-probe")
		cancel()
		if err == nil {
			rev = r.Header.Revision
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("linearizable read through %s after heal: %v", via.name, err)
		}
	}
	for _, m := range c.members {
		for {
			ctx, cancel := ctx3()
			r, err := m.cli.Get(ctx, "converge-probe", clientv3.WithSerializable())
			cancel()
			if err == nil && r.Header.Revision >= rev {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("%s did not catch up to revision %d: %v", m.name, rev, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	hashes := map[string]uint32{}
	for _, m := range c.members {
		ctx, cancel := ctx3()
		h, err := m.cli.HashKV(ctx, m.addr, rev)
		cancel()
		if err != nil {
			c.t.Fatalf("HashKV on %s: %v", m.name, err)
		}
		hashes[m.name] = h.Hash
	}
	first := hashes[c.members[0].name]
	for _, h := range hashes {
		if h != first {
			c.t.Errorf("HashKV at revision %d differs: %v", rev, hashes)
			break
		}
	}
	c.t.Logf("converged at revision %d, HashKV %08x on all members", rev, first)
	return rev
}

// checkAcked reads every acknowledged write on every member (serializably,
// after converge) and checks value and revision.
func (c *cluster) checkAcked(acked map[string]int64) {
	c.t.Helper()
	for _, m := range c.members {
		for k, rev := range acked {
			ctx, cancel := ctx3()
			r, err := m.cli.Get(ctx, k, clientv3.WithSerializable())
			cancel()
			switch {
			case err != nil:
				c.t.Errorf("%s: get %s: %v", m.name, k, err)
			case len(r.Kvs) != 1:
				c.t.Errorf("%s: acknowledged write %s@%d lost", m.name, k, rev)
			case string(r.Kvs[0].Value) != k || r.Kvs[0].ModRevision != rev:
				c.t.Errorf("%s: acknowledged %s@%d reads %q@%d", m.name, k, rev, r.Kvs[0].Value, r.Kvs[0].ModRevision)
			}
		}
	}
}

// Isolating a follower: the majority goes on serving writes and
// linearizable reads; the isolated member refuses writes and linearizable
// reads with etcd's retryable errors within the client's deadline, still
// answers serializable reads (stale), and catches up once healed.
func TestPartitionIsolatedFollower(t *testing.T) {
	begin := time.Now()
	c := startCluster(t)
	leader, _ := c.waitLeader(c.members, 0, 10*time.Second)
	var iso *member
	for _, m := range c.members {
		if m != leader {
			iso = m
			break
		}
	}
	t.Logf("cluster up in %v; leader %s, isolating follower %s", time.Since(begin), leader.name, iso.name)

	acked := map[string]int64{}
	put := func(m *member, k string) error {
		ctx, cancel := ctx3()
		defer cancel()
		r, err := m.cli.Put(ctx, k, k)
		if err == nil {
			acked[k] = r.Header.Revision
		}
		return err
	}
	if err := put(leader, "before"); err != nil {
		t.Fatal(err)
	}
	// The isolated member has it before the cut (a serializable read shows it later).
	for {
		ctx, cancel := ctx3()
		r, err := iso.cli.Get(ctx, "before", clientv3.WithSerializable())
		cancel()
		if err == nil && len(r.Kvs) == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	c.part.isolate(iso.id)
	cutAt := time.Now()

	// The majority serves, through both of its members.
	for _, m := range c.others(iso) {
		for j := 0; j < 5; j++ {
			k := fmt.Sprintf("during/%s/%d", m.name, j)
			if err := put(m, k); err != nil {
				t.Fatalf("put %s through %s (majority) during the partition: %v", k, m.name, err)
			}
		}
		ctx, cancel := ctx3()
		r, err := m.cli.Get(ctx, fmt.Sprintf("during/%s/4", m.name))
		cancel()
		if err != nil || len(r.Kvs) != 1 {
			t.Fatalf("linearizable read through %s (majority) during the partition: %v", m.name, err)
		}
	}
	if l := c.leaderOf(leader); l != leader.id {
		t.Errorf("leader changed to %x when a follower was cut off", l)
	}

	// The isolated member: writes and linearizable reads fail, within the
	// deadline, with retryable errors. Try until it has given up on its
	// leader (pre-vote drops it after an election timeout) and then some.
	type outcome struct {
		at   time.Duration
		what string
		err  string
		took time.Duration
	}
	var (
		seenMu     sync.Mutex
		seen       []outcome
		noLeaderAt time.Duration
	)
	record := func(what string, err error, took time.Duration) {
		seenMu.Lock()
		defer seenMu.Unlock()
		at := time.Since(cutAt)
		seen = append(seen, outcome{at.Round(10 * time.Millisecond), what, describe(err), took.Round(10 * time.Millisecond)})
		if err == nil {
			t.Errorf("%s on the isolated member succeeded", what)
		} else if !retryable(err) {
			t.Errorf("%s on the isolated member: non-retryable error %v", what, err)
		}
		if rpctypes.ErrorDesc(err) == rpctypes.ErrNoLeader.Error() && noLeaderAt == 0 {
			noLeaderAt = at
		}
	}
	ops := []struct {
		what string
		do   func(ctx context.Context, k string) error
	}{
		{"clientv3 Put", func(ctx context.Context, k string) error { _, err := iso.cli.Put(ctx, k, k); return err }},
		{"clientv3 linearizable Get", func(ctx context.Context, k string) error { _, err := iso.cli.Get(ctx, "before"); return err }},
		{"raw Put", func(ctx context.Context, k string) error {
			_, err := iso.kv.Put(ctx, &pb.PutRequest{Key: []byte(k + "/raw"), Value: []byte("x")})
			return err
		}},
		{"raw linearizable Range", func(ctx context.Context, k string) error {
			_, err := iso.kv.Range(ctx, &pb.RangeRequest{Key: []byte("before")})
			return err
		}},
	}
	// Rounds of all four at once, until three election timeouts have
	// passed since the cut and at least two rounds ran (the first round
	// usually waits out its deadline: the member still follows its leader).
	for i := 0; time.Since(cutAt) < 3*election || i < 2; i++ {
		var wg sync.WaitGroup
		for _, op := range ops {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k := fmt.Sprintf("isolated/%d/%s", i, strings.ReplaceAll(op.what, " ", "-"))
				err, d := timed(t, op.what+" on the isolated member", func(ctx context.Context) error { return op.do(ctx, k) })
				record(op.what, err, d)
			}()
		}
		wg.Wait()
		time.Sleep(200 * time.Millisecond)
	}
	sort.Slice(seen, func(i, j int) bool { return seen[i].at < seen[j].at })
	for _, o := range seen {
		t.Logf("isolated member, %v after the cut: %s -> %s (in %v)", o.at, o.what, o.err, o.took)
	}
	if noLeaderAt == 0 {
		t.Errorf("the isolated member never reported %q within %v of the cut", rpctypes.ErrNoLeader, time.Since(cutAt))
	} else {
		t.Logf("isolated member reports no leader %v after the cut", noLeaderAt)
	}
	// Serializable reads still answer, from its stale state.
	ctx, cancel := ctx3()
	r, err := iso.cli.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithSerializable())
	cancel()
	if err != nil {
		t.Fatalf("serializable read on the isolated member: %v", err)
	}
	got := map[string]bool{}
	for _, kv := range r.Kvs {
		got[string(kv.Key)] = true
	}
	if !got["before"] {
		t.Errorf("serializable read on the isolated member misses %q", "before")
	}
	for k := range got {
		if strings.HasPrefix(k, "during/") {
			t.Errorf("isolated member has %s, written during the partition", k)
		}
	}

	c.part.heal()
	healAt := time.Now()
	c.waitLeader(c.members, 0, 10*time.Second)
	c.converge(iso)
	c.checkAcked(acked)
	// Writes the isolated member refused were not applied anywhere.
	for _, m := range c.members {
		ctx, cancel := ctx3()
		r, err := m.cli.Get(ctx, "isolated/", clientv3.WithPrefix(), clientv3.WithSerializable(), clientv3.WithCountOnly())
		cancel()
		if err != nil || r.Count != 0 {
			t.Errorf("%s: %v refused writes from the isolated member applied (%v)", m.name, r.Count, err)
		}
	}
	t.Logf("healed and converged in %v; scenario took %v", time.Since(healAt), time.Since(begin))
}

// Isolating the leader while clients write through all three members: the
// majority elects a new leader within a few election timeouts, writes
// through the old leader are not acknowledged, and once healed every
// member converges with no acknowledged write lost.
func TestPartitionIsolatedLeader(t *testing.T) {
	begin := time.Now()
	c := startCluster(t)
	old, _ := c.waitLeader(c.members, 0, 10*time.Second)
	t.Logf("cluster up in %v; isolating leader %s", time.Since(begin), old.name)

	type result struct {
		m          *member
		key        string
		sent, done time.Time
		rev        int64
		err        error
	}
	var (
		mu      sync.Mutex
		results []result
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	const perMember = 3
	for _, m := range c.members {
		for w := 0; w < perMember; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					k := fmt.Sprintf("w/%s/%d/%04d", m.name, w, i)
					ctx, cancel := ctx3()
					sent := time.Now()
					r, err := m.cli.Put(ctx, k, k)
					cancel()
					res := result{m: m, key: k, sent: sent, done: time.Now(), err: err}
					if err == nil {
						res.rev = r.Header.Revision
					}
					mu.Lock()
					results = append(results, res)
					mu.Unlock()
					if err != nil {
						time.Sleep(50 * time.Millisecond)
					} else {
						time.Sleep(5 * time.Millisecond)
					}
				}
			}()
		}
	}
	time.Sleep(500 * time.Millisecond)

	c.part.isolate(old.id)
	cutAt := time.Now()
	majority := c.others(old)
	nl, took := c.waitLeader(majority, old.id, 3*election+election/2)
	t.Logf("new leader %s elected by the majority %v after the cut", nl.name, took.Round(10*time.Millisecond))
	// Let the writers run against the partition a while.
	time.Sleep(3 * election)
	// The old leader has stepped down (check quorum).
	if l := c.leaderOf(old); l == old.id {
		t.Errorf("the isolated old leader still believes it leads, %v after the cut", time.Since(cutAt))
	}
	c.part.heal()
	healAt := time.Now()
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	c.waitLeader(c.members, 0, 10*time.Second)
	c.converge(nl)

	acked := map[string]int64{}
	byRev := map[int64]string{}
	errCount := map[string]int{}
	var oldAcked, majorityAcked int
	for _, r := range results {
		if r.err != nil {
			errCount[fmt.Sprintf("%s via %s", describe(r.err), roleOf(r.m, old))]++
			if !retryable(r.err) {
				t.Errorf("put %s through %s: non-retryable error %v", r.key, r.m.name, r.err)
			}
			if d := r.done.Sub(r.sent); d > opTimeout+slack {
				t.Errorf("put %s through %s returned after %v", r.key, r.m.name, d)
			}
			continue
		}
		acked[r.key] = r.rev
		if other, dup := byRev[r.rev]; dup {
			t.Errorf("revision %d acknowledged for %s and %s", r.rev, other, r.key)
		}
		byRev[r.rev] = r.key
		partitioned := r.sent.After(cutAt.Add(100*time.Millisecond)) && r.sent.Before(healAt.Add(-200*time.Millisecond))
		if partitioned && r.m == old {
			t.Errorf("put %s sent to the isolated old leader %v after the cut was acknowledged (rev %d, %v after sending)",
				r.key, r.sent.Sub(cutAt), r.rev, r.done.Sub(r.sent))
		}
		if partitioned && r.m == old {
			oldAcked++
		}
		if partitioned && r.m != old {
			majorityAcked++
		}
	}
	if majorityAcked == 0 {
		t.Error("no write through the majority was acknowledged during the partition")
	}
	keys := make([]string, 0, len(errCount))
	for k := range errCount {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("failed puts: %d x %s", errCount[k], k)
	}
	t.Logf("%d puts, %d acknowledged (%d through the majority during the partition)", len(results), len(acked), majorityAcked)
	c.checkAcked(acked)
	t.Logf("healed and converged in %v; scenario took %v", time.Since(healAt), time.Since(begin))
}

func roleOf(m, old *member) string {
	if m == old {
		return "old leader"
	}
	return "majority"
}

// Issue 19, bug 12: a leader that is stopped (SIGTERM: node.Stop) first
// hands leadership to an up-to-date follower, as etcd does, so a rolling
// restart does not leave the cluster without a leader for an election
// timeout. When Stop returns, another member already leads.
func TestStopLeaderHandsOffLeadership(t *testing.T) {
	c := startCluster(t)
	old, _ := c.waitLeader(c.members, 0, 10*time.Second)
	ctx, cancel := ctx3()
	if _, err := old.cli.Put(ctx, "before", "1"); err != nil {
		t.Fatal(err)
	}
	cancel()
	old.n.Stop()
	leads := 0
	for _, m := range c.others(old) {
		if c.leaderOf(m) == m.id {
			leads++
		}
	}
	if leads != 1 {
		t.Fatalf("%d of the other members lead right after the leader stopped, want 1 (it hands leadership on)", leads)
	}
	next, _ := c.waitLeader(c.others(old), old.id, 10*time.Second)
	ctx, cancel = ctx3()
	defer cancel()
	if _, err := next.cli.Put(ctx, "after", "1"); err != nil {
		t.Fatal(err)
	}
}

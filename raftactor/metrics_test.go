package raftactor_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
)

func scrape(t *testing.T, reg prometheus.Gatherer) testkit.Scrape { return testkit.Gather(t, reg) }

func eventuallyValue(t *testing.T, reg prometheus.Gatherer, name string, cond func(float64) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		v, _ := scrape(t, reg).Value(name)
		if cond(v) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s is %v", what, name, v)
		}
		time.Sleep(time.Millisecond)
	}
}

// A single member: the collector follows the raft actor's View (leader,
// id, commit index), and the process-wide families move with the work:
// the leader change of its election, the synced log writes and their
// bytes, and the proposals it holds while the store is busy.
func TestMetricsSingleMember(t *testing.T) {
	before := scrape(t, testkit.Registry(t))
	wrap, reached, release := gate("slow")
	n := startNode(t, nodeOpts{storeWrap: wrap})
	t.Cleanup(release)
	reg := testkit.Registry(t, raftactor.NewCollector(n.raftView))

	s := scrape(t, reg)
	for name, want := range map[string]float64{
		"etcd_server_has_leader": 1, "etcd_server_is_leader": 1, "etcd_server_is_learner": 0,
	} {
		if got := s.Must(t, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if v := s.Must(t, "etcd_server_id", "server_id", fmt.Sprintf("%x", uint64(memberID))); v != 1 {
		t.Errorf("etcd_server_id{server_id=%x} = %v", uint64(memberID), v)
	}
	if d := s.Must(t, "etcd_server_leader_changes_seen_total") - before.Must(t, "etcd_server_leader_changes_seen_total"); d < 1 {
		t.Errorf("leader_changes_seen_total grew by %v after an election", d)
	}

	committed := s.Must(t, "etcd_server_proposals_committed_total")
	groupEntries := s.Sum("metastore_raft_synced_write_entries")
	fsyncs := s.Must(t, "etcd_disk_wal_fsync_duration_seconds")
	walBytes := s.Must(t, "etcd_disk_wal_write_bytes_total")
	pending := s.Must(t, "etcd_server_proposals_pending")
	const puts = 5
	for i := range puts {
		n.put(fmt.Sprintf("k%d", i), "v")
	}
	s = scrape(t, reg)
	if got := s.Must(t, "etcd_server_proposals_committed_total") - committed; got != puts {
		t.Errorf("proposals_committed_total grew by %v over %d puts, want %d", got, puts, puts)
	}
	if got := s.Must(t, "etcd_disk_wal_fsync_duration_seconds") - fsyncs; got < 1 {
		t.Errorf("wal_fsync_duration_seconds observed %v synced writes over %d puts", got, puts)
	}
	if got := s.Sum("metastore_raft_synced_write_entries") - groupEntries; got < puts {
		t.Errorf("synced writes made %v entries durable over %d puts, want at least %d", got, puts, puts)
	}
	if got := s.Must(t, "etcd_disk_wal_write_bytes_total") - walBytes; got < puts*10 {
		t.Errorf("wal_write_bytes_total grew by %v bytes over %d puts", got, puts)
	}

	// A proposal the store is held on is pending until it is applied.
	slow := n.send(putReq("slow", "1"))
	<-reached
	eventuallyValue(t, reg, "etcd_server_proposals_pending", func(v float64) bool { return v == pending+1 }, "while the store is held")
	release()
	if res, err := await(slow, wait); err != nil || res.Err != nil {
		t.Fatalf("slow: %v %v", err, res.Err)
	}
	eventuallyValue(t, reg, "etcd_server_proposals_pending", func(v float64) bool { return v == pending }, "once applied")
}

// Three members: has_leader follows each View; an isolated follower loses
// its leader (has_leader 0) and fails the reads it is asked
// (read_indexes_failed_total); a leader that sends its heartbeats late
// counts heartbeat_send_failures_total; a learner promoted by the leader
// counts learner_promote_successes.
func TestMetricsCluster(t *testing.T) {
	var gate atomic.Pointer[chan struct{}] // while set, raft actors block in Send
	c := startClusterWith(t, func(i int) string { return fmt.Sprintf("http://n%d", i+1) }, func(cfg *raftactor.Config) {
		cfg.Transport = gatedTransport{cfg.Transport, &gate}
	})
	lead := c.waitLeader(c.nodes)
	regs := map[uint64]*prometheus.Registry{}
	for _, n := range c.nodes {
		regs[n.id] = testkit.Registry(t, raftactor.NewCollector(n.view))
		s := scrape(t, regs[n.id])
		if v := s.Must(t, "etcd_server_has_leader"); v != 1 {
			t.Errorf("%x: has_leader %v", n.id, v)
		}
		if v, want := s.Must(t, "etcd_server_is_leader"), b2f(n == lead); v != want {
			t.Errorf("%x: is_leader %v, want %v", n.id, v, want)
		}
	}
	c.put(lead, "a", "1")

	// The leader late: held in a Send while three more ticks come due.
	global := testkit.Registry(t)
	hb := scrape(t, global).Must(t, "etcd_server_heartbeat_send_failures_total")
	held := make(chan struct{})
	gate.Store(&held)
	c.clock.Advance(tickEvery)
	time.Sleep(20 * time.Millisecond) // the leader is in its heartbeat Send
	c.clock.Advance(3 * tickEvery)
	gate.Store(nil)
	close(held)
	eventuallyValue(t, global, "etcd_server_heartbeat_send_failures_total", func(v float64) bool { return v > hb }, "late heartbeats")

	// A learner added and promoted through the leader.
	promotions := scrape(t, global).Must(t, "etcd_server_learner_promote_successes")
	const learner = 0x4444
	member := storeactor.EncodeMemberContext(&pb.Member{ID: learner, Name: "n4", PeerURLs: []string{"http://n4"}, IsLearner: true})
	c.confChange(lead, raftpb.ConfChangeAddLearnerNode, learner, member)
	c.confChange(lead, raftpb.ConfChangeAddNode, learner, storeactor.PromoteContext)
	// The store answers the client once it has sent raft its report, which
	// raft may not have taken in yet.
	eventuallyValue(t, global, "etcd_server_learner_promote_successes", func(v float64) bool { return v == promotions+1 }, "a promotion")

	// An isolated follower loses its leader and fails reads.
	f := c.followers(lead)[0]
	c.net.isolate(f.id, clusterIDs...)
	c.tickUntil("the isolated follower has no leader", 10*elecTicks, func() bool { return f.view.Load().Lead == 0 })
	if v := scrape(t, regs[f.id]).Must(t, "etcd_server_has_leader"); v != 0 {
		t.Errorf("isolated follower: has_leader %v", v)
	}
	failed := scrape(t, global).Must(t, "etcd_server_read_indexes_failed_total")
	ch := make(chan error, 1)
	c.kit.Root().Send(f.raftPID, &raftactor.ReadIndex{Reply: ch})
	if err := <-ch; err != rpctypes.ErrGRPCNoLeader {
		t.Fatalf("read without a leader: %v", err)
	}
	if v := scrape(t, global).Must(t, "etcd_server_read_indexes_failed_total"); v != failed+1 {
		t.Errorf("read_indexes_failed_total %v -> %v", failed, v)
	}
}

func (c *rcluster) confChange(lead *cnode, typ raftpb.ConfChangeType, id uint64, ctx []byte) {
	c.t.Helper()
	cc := &raftpb.ConfChange{Type: typ.Enum(), NodeId: proto.Uint64(id), Id: proto.Uint64(lead.ids.Next()), Context: ctx}
	ch := make(chan actors.Result, 1)
	c.kit.Root().Send(lead.raftPID, &raftactor.ProposeConfChange{CC: cc, Reply: ch})
	if res := c.result(fmt.Sprintf("conf change %v %x", typ, id), ch); res.Err != nil {
		c.t.Fatalf("conf change %v %x: %v", typ, id, res.Err)
	}
}

// gatedTransport blocks Send while its gate holds an open channel.
type gatedTransport struct {
	raftactor.Transport
	gate *atomic.Pointer[chan struct{}]
}

func (g gatedTransport) Send(msgs []*raftpb.Message) {
	if ch := g.gate.Load(); ch != nil {
		<-*ch
	}
	g.Transport.Send(msgs)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

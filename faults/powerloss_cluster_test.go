package faults

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestPowerLossCluster: three members under load; at each crash point
//
//   - member: one member (the leader as often as any) loses power and
//     restarts on what its disk kept;
//   - all: every member loses power at one instant and the cluster
//     restarts on what the disks kept;
//   - install: a follower loses power, the cluster goes on past its log,
//     and the follower, restarted, loses power again in the middle of the
//     snapshot install that brings it back, and restarts once more.
//
// Each crashed disk must hold what raft and the store promise at rest;
// once the cluster has caught up, every acknowledged write must be there
// with its revision, the state must be a prefix of the log, and every
// member's HashKV must agree.
func TestPowerLossCluster(t *testing.T) {
	r := newRun(t)
	points := r.pick(6, 45)
	p := newPower(r.seed)
	c := startCluster(t, p)
	m := newModel()
	l := startLoad(m, c.conns(), 6, r.seed)
	t.Cleanup(l.stop)
	kinds := []string{"member", "all", "install"}
	for i := range points {
		kind := kinds[i%len(kinds)]
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		l.resume()
		l.waitOps(ctx, 20+r.rng.IntN(150))
		c.crash(ctx, r, m, l, i, kind)
		l.pause()
		lead, err := c.converge(ctx)
		if err != nil {
			t.Fatalf("crash point %d (%s): %v (seed %d)", i, kind, err, r.seed)
		}
		r.report(fmt.Sprintf("crash point %d (%s), after the cluster caught up", i, kind), c.check(ctx, r, m, lead))
		cancel()
	}
	r.count("ops", m.opCount())
	r.count("acks", int(m.ackCount()))
}

// crash runs one crash point of the kind named, and restarts what it
// took down.
func (c *cluster) crash(ctx context.Context, r *run, m *model, l *load, i int, kind string) {
	r.count(kind, 1)
	switch kind {
	case "member":
		x := c.members[r.rng.IntN(len(c.members))]
		c.powerLoss(r, m, i, kind, false, x)
	case "all":
		c.powerLoss(r, m, i, kind, true, c.members...)
		m.thaw()
	case "install":
		lead, x := c.leaveBehind(ctx, r, m, l, i)
		step := installSteps[r.rng.IntN(len(installSteps))]
		k := 1 + r.rng.IntN(step.ops)
		c.installCrash(ctx, r, m, i, lead, x, step, k)
	}
}

// leaveBehind takes a follower's power at a random instant, restarts
// nothing, and lets the cluster move on past its log, which the leader
// truncates: the follower can catch up only from a snapshot.
func (c *cluster) leaveBehind(ctx context.Context, r *run, m *model, l *load, i int) (lead, x *cmember) {
	lead, _, err := c.leader(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	for x == nil || x == lead {
		x = c.members[r.rng.IntN(len(c.members))]
	}
	tr := c.trigger(m, false, x)
	tr.pull(r.unsynced(), true)
	cp := <-tr.fired
	cp.n, cp.kind = i, "install"
	c.stop(x)
	x.disk = newDisk(c.p, cp.loss.clones[0])
	c.checkRest(r, cp, x)
	l.waitOps(ctx, 250)
	return lead, x
}

// trigger is a trigger for the power of ms: while it is down, they die
// and (freeze: the whole cluster is down) acknowledgements stop counting,
// since what the members acknowledge until they stop is on no disk the
// cluster restarts from.
func (c *cluster) trigger(m *model, freeze bool, ms ...*cmember) *trigger {
	return newTrigger(c.p, c.disks(ms...), func() int64 {
		for _, x := range ms {
			x.dead.Store(true)
		}
		if freeze {
			return m.freeze()
		}
		return m.ackCount()
	})
}

// powerLoss takes ms down at one instant and restarts them on what their
// disks kept.
func (c *cluster) powerLoss(r *run, m *model, i int, kind string, freeze bool, ms ...*cmember) {
	tr := c.trigger(m, freeze, ms...)
	tr.pull(r.unsynced(), true)
	cp := <-tr.fired
	cp.n, cp.kind = i, kind
	c.restartOn(r, cp, ms...)
}

// restartOn stops ms and restarts them on the clones a power loss left.
func (c *cluster) restartOn(r *run, cp crashPoint, ms ...*cmember) {
	c.stop(ms...)
	for j, x := range ms {
		x.disk = newDisk(c.p, cp.loss.clones[j])
		c.checkRest(r, cp, x)
	}
	if err := c.start(ms...); err != nil {
		c.t.Fatalf("%v: restart on the crashed disks: %v (seed %d)", cp, err, r.seed)
	}
}

// installCrash restarts x (behind the leader's truncated log) with its
// power cut before the k-th disk operation of a step of the snapshot
// install that catches it up, and restarts it again on what that left.
func (c *cluster) installCrash(ctx context.Context, r *run, m *model, i int, lead, x *cmember, step installStep, k int) {
	var linked, marked, recorded, pending bool // pending: a record written, not yet synced
	tr := c.trigger(m, false, x)
	tr.arm(r, x.disk, k, func(op diskOp) bool {
		recv := strings.Contains(op.path, "/recv-")
		// The table installSnapshot ingests: <snap>/recv-<term>-<index>.sst.
		table := recv && strings.HasSuffix(op.path, ".sst") && strings.HasSuffix(path.Dir(op.path), "/snap")
		link := table && op.kind == errorfs.OpLink
		marker := linked && isWAL(op) && bytes.Contains(op.data, walMarker)
		markerSync := pending && isWAL(op) && isSync(op)
		defer func() {
			linked, marked, recorded = linked || link, marked || marker, recorded || markerSync
			pending = marker || pending && !markerSync
		}()
		switch step.name {
		case "receive":
			return recv && !table
		case "table":
			return table && !link
		case "ingest":
			return link || linked && !marked && !isWAL(op)
		default: // record: the raft log's batch, its sync, the WAL's next operation
			return marker || markerSync || recorded && isWAL(op)
		}
	})
	// Not waiting for x to know a leader: the power may go before.
	if err := c.launch(x); err != nil {
		c.t.Fatalf("crash point %d (install): restart %s: %v (seed %d)", i, x.name, err, r.seed)
	}
	// Caught up before the k-th operation: the power goes once x has
	// applied what the leader had committed.
	st, err := pb.NewMaintenanceClient(lead.conn).Status(ctx, &pb.StatusRequest{})
	if err != nil {
		c.t.Fatal(err)
	}
	var cp crashPoint
	for waiting := true; waiting; {
		select {
		case cp = <-tr.fired:
			waiting = false
		case <-ctx.Done():
			xs, err := pb.NewMaintenanceClient(x.conn).Status(context.Background(), &pb.StatusRequest{})
			c.t.Fatalf("crash point %d (install): %s did not catch up to %d (status %v, %v) (seed %d)",
				i, x.name, st.RaftIndex, xs, err, r.seed)
		case <-time.After(20 * time.Millisecond):
			xs, err := pb.NewMaintenanceClient(x.conn).Status(ctx, &pb.StatusRequest{})
			if err == nil && xs.RaftAppliedIndex >= st.RaftIndex {
				tr.pull(r.unsynced(), false)
			}
		}
	}
	cp.n, cp.kind = i, "install-"+step.name
	if cp.during {
		r.count("install-during-"+step.name, 1)
	}
	c.restartOn(r, cp, x)
}

// installStep is a step of a snapshot install a power loss can strike
// in, with how many of its disk operations it may strike before:
// receiving the checkpoint (its files, synced), writing the table the
// store ingests, the ingest (a link, pebble's flush and MANIFEST), and
// recording the snapshot in the raft log (the batch's write, its sync,
// the WAL's next operation).
type installStep struct {
	name string
	ops  int
}

var installSteps = []installStep{{"receive", 25}, {"table", 15}, {"ingest", 8}, {"record", 3}}

// checkRest checks what x's crashed disk holds. A store ahead of the
// raft log's commit index is counted (restState.aheadOfCommit) when the
// power went in or right after a snapshot install, and is a violation
// anywhere else.
func (c *cluster) checkRest(r *run, cp crashPoint, x *cmember) {
	c.t.Helper()
	rest, err := readRest(x.disk.mem, x.cfg.DataDir)
	if err != nil {
		r.report(cp.String(), []string{x.name + ": " + err.Error()})
	}
	// The leader's checkpoint may be newer than the snapshot's index (its
	// store applied on while the snapshot was sent): right after an install
	// is recorded, too, the store is ahead of the commit index the log
	// holds, until the next hard state the leader brings.
	midInstall := cp.during && rest.receiving() || strings.HasPrefix(cp.kind, "install-")
	if midInstall && rest.aheadOfCommit() {
		r.count("store-ahead-of-log-mid-install", 1)
	}
	bad := rest.check(midInstall)
	for i := range bad {
		bad[i] = x.name + " " + bad[i]
	}
	r.report(cp.String(), bad)
	x.leftovers = rest.snapFiles
}

// check checks the caught-up cluster against the model (through the
// leader) and the members' hashes against the leader's.
func (c *cluster) check(ctx context.Context, r *run, m *model, lead *cmember) []string {
	st, bad := checkMember(ctx, r, lead.conn, m, allAcks)
	for _, x := range c.members {
		if x != lead {
			bad = append(bad, compareHashes(ctx, r, st.rev, pb.NewMaintenanceClient(lead.conn), pb.NewMaintenanceClient(x.conn))...)
		}
		// What a crash interrupted in the snapshot folder must not stay
		// to fill the disk.
		snap := x.disk.mem.PathJoin(x.cfg.DataDir, "member", "snap")
		now, _ := x.disk.mem.List(snap)
		for _, f := range x.leftovers {
			if slices.Contains(now, f) {
				bad = append(bad, fmt.Sprintf("%s: %s still holds %s, left by the power loss", x.name, snap, f))
			}
		}
	}
	return bad
}

package faults

import (
	"context"
	"os"
	"testing"
	"time"
)

// Bugs these suites found in code outside the storage code they cover
// (raftactor/, which only its owner changes), kept as failing tests:
// they run with METASTORE_FAULTS_KNOWN_BUGS=1, and are skipped otherwise
// (so are the random crash points that hit them) until fixed.
// docs/reliability.md describes each.

func knownBugs() bool { return os.Getenv("METASTORE_FAULTS_KNOWN_BUGS") != "" }

func skipKnownBug(t *testing.T, bug string) {
	if !knownBugs() {
		t.Skipf("known bug, not fixed yet (METASTORE_FAULTS_KNOWN_BUGS=1 runs it): %s", bug)
	}
}

// recordBug: a snapshot install records the snapshot in the raft log
// (raftactor.Node.installSnapshot: the truncation point and the deletion
// of the entries it replaces, one synced batch) and only then, in
// another batch, the Ready's hard state with the commit index the
// snapshot brings. A power loss between the two leaves a commit index
// below the truncation point, from which raft refuses to start ("state.
// commit 417 is out of range [1302, 1302]"): the member never starts
// again.
const recordBug = "a power loss between a snapshot's record and the hard state leaves a member that cannot start"

// TestPowerLossBetweenSnapshotRecordAndHardState cuts a follower's power
// after the batch recording an installed snapshot is synced, before the
// raft log's next write: the member must start again on that disk.
func TestPowerLossBetweenSnapshotRecordAndHardState(t *testing.T) {
	skipKnownBug(t, recordBug)
	r := newRun(t)
	p := newPower(r.seed)
	c := startCluster(t, p)
	m := newModel()
	l := startLoad(m, c.conns(), 6, r.seed)
	t.Cleanup(l.stop)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l.waitOps(ctx, 50)
	lead, x := c.follower(ctx, r, m, l, 0)
	c.installCrash(ctx, r, m, 0, lead, x, installStep{"record", 3}, 3)
	l.pause()
	lead, err := c.converge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r.report("after the cluster caught up", c.check(ctx, r, m, lead))
}

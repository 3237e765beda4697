//go:build linux

package faults

import (
	"os"
	"testing"
	"time"

	"github.com/metastore/metastore/e2e"
)

func TestMain(m *testing.M) { e2e.Main(m) }

// longEnv selects the long runs (make test-faults): 100 kill, 50 pause
// and 50 partition cycles instead of a cycle or two of each kind.
const longEnv = "METASTORE_FAULTS"

func planFor(faults []fault, shortCycles, longCycles int) plan {
	if os.Getenv(longEnv) == "long" {
		return plan{faults: faults, cycles: longCycles, checkTimeout: 5 * time.Minute, long: true, leaseTTL: leaseTTL}
	}
	return plan{faults: faults, cycles: shortCycles, checkTimeout: time.Minute, leaseTTL: leaseTTL}
}

// TestKills: kill -9 the leader, a follower, two members at once, and all
// of them, under load, and restart them.
func TestKills(t *testing.T) {
	run(t, planFor(killFaults, len(killFaults), 100))
}

// TestPauses: SIGSTOP the leader for longer than the election timeout,
// then SIGCONT it.
func TestPauses(t *testing.T) {
	run(t, planFor(pauseFaults, 2, 50))
}

// TestPartitions: isolate the leader, isolate a follower, and split the
// cluster into a bridge (two members that cannot reach each other, both
// reaching the third).
func TestPartitions(t *testing.T) {
	run(t, planFor(partitionFaults, len(partitionFaults), 50))
}

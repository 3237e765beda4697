//go:build linux

package faults

import (
	"os"
	"testing"
	"time"

	"github.com/metastore/metastore/e2e"
)

func TestMain(m *testing.M) { e2e.Main(m) }

// LongEnv selects the long runs (make test-faults): 100 kill, 50 pause
// and 50 partition cycles instead of a cycle or two of each kind.
const LongEnv = "METASTORE_FAULTS"

func plan(faults []fault, shortCycles, longCycles int) Plan {
	if os.Getenv(LongEnv) == "long" {
		return Plan{Faults: faults, Cycles: longCycles, CheckTimeout: 5 * time.Minute, Long: true}
	}
	return Plan{Faults: faults, Cycles: shortCycles, CheckTimeout: time.Minute}
}

// TestKills: kill -9 the leader, a follower, two members at once, and all
// of them, under load, and restart them.
func TestKills(t *testing.T) {
	Run(t, plan(killFaults, len(killFaults), 100))
}

// TestPauses: SIGSTOP the leader for longer than the election timeout,
// then SIGCONT it.
func TestPauses(t *testing.T) {
	Run(t, plan(pauseFaults, 2, 50))
}

// TestPartitions: isolate the leader, isolate a follower, and split the
// cluster into a bridge (two members that cannot reach each other, both
// reaching the third).
func TestPartitions(t *testing.T) {
	Run(t, plan(partitionFaults, len(partitionFaults), 50))
}

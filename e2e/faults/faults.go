//go:build linux

package faults

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// A fault is one kind of failure the suite injects: inject makes it (the
// cluster healthy, its leader known) and returns what it did and what
// ends it. The suite holds the fault for hold (long: the long runs'
// durations), then heals it.
type fault struct {
	name   string
	inject func(c *cluster, lead int, rng *rand.Rand) (what string, heal func() error)
	hold   func(rng *rand.Rand, long bool) time.Duration
}

// between is a random duration in [lo, hi).
func between(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)))
}

// Each outage outlasts raft's randomized election timeout ([1s, 2s) with
// the default --election-timeout), so that the members it cuts off the
// leader from campaign; in the long runs one in four also outlasts the
// lease TTL, so that leases kept alive only through the member cut off
// expire meanwhile.
func holdOutage(rng *rand.Rand, long bool) time.Duration {
	if long && rng.IntN(4) == 0 {
		return between(rng, leaseTTL*time.Second+2*time.Second, leaseTTL*time.Second+4*time.Second)
	}
	return between(rng, 2*time.Second, 4*time.Second)
}

// holdPause is how long a paused leader stays stopped: as an outage, long
// enough for a new election and for the paused leader's Lessor to find
// the leases kept alive meanwhile expired by its own clock (a deposed
// leader once revoked them; see TestLeaseSurvivesDeposedLeaderResuming).
func holdPause(rng *rand.Rand, long bool) time.Duration {
	return holdOutage(rng, long)
}

// A killed member stays down a moment, or not at all.
func holdDown(rng *rand.Rand, _ bool) time.Duration { return between(rng, 0, 2*time.Second) }

func pick(rng *rand.Rand, is []int) int { return is[rng.IntN(len(is))] }

func killing(c *cluster, is ...int) (string, func() error) {
	c.kill(is...)
	names := ""
	for _, i := range is {
		names += " " + c.name(i)
	}
	return "killed" + names, func() error { c.restart(is...); return nil }
}

var killFaults = []fault{
	{name: "kill the leader", hold: holdDown, inject: func(c *cluster, lead int, _ *rand.Rand) (string, func() error) {
		return killing(c, lead)
	}},
	{name: "kill a follower", hold: holdDown, inject: func(c *cluster, lead int, rng *rand.Rand) (string, func() error) {
		return killing(c, pick(rng, c.others(lead)))
	}},
	{name: "kill two at once", hold: holdDown, inject: func(c *cluster, lead int, rng *rand.Rand) (string, func() error) {
		spared := rng.IntN(len(c.members)) // the leader is among the two unless spared
		return killing(c, c.others(spared)...)
	}},
	{name: "kill all", hold: holdDown, inject: func(c *cluster, _ int, _ *rand.Rand) (string, func() error) {
		return killing(c, c.others()...)
	}},
}

var pauseFaults = []fault{
	{name: "pause the leader", hold: holdPause, inject: func(c *cluster, lead int, _ *rand.Rand) (string, func() error) {
		if err := c.pause(lead); err != nil {
			return fmt.Sprintf("SIGSTOP %s failed: %v", c.name(lead), err), func() error { return err }
		}
		return "SIGSTOP " + c.name(lead), func() error { return c.resume(lead) }
	}},
}

func splitting(c *cluster, a, b []int) (string, func() error) {
	c.split(a, b)
	return fmt.Sprintf("cut %v from %v", c.names(a), c.names(b)), func() error { c.heal(); return nil }
}

var partitionFaults = []fault{
	{name: "isolate the leader", hold: holdOutage, inject: func(c *cluster, lead int, _ *rand.Rand) (string, func() error) {
		return splitting(c, []int{lead}, c.others(lead))
	}},
	{name: "isolate a follower", hold: holdOutage, inject: func(c *cluster, lead int, rng *rand.Rand) (string, func() error) {
		f := pick(rng, c.others(lead))
		return splitting(c, []int{f}, c.others(f))
	}},
	// A bridge: the two ends cannot reach each other, the middle reaches
	// both. With the leader in the middle nothing should change; with the
	// leader at an end, the other end may campaign and the middle decide.
	{name: "bridge", hold: holdOutage, inject: func(c *cluster, _ int, rng *rand.Rand) (string, func() error) {
		mid := rng.IntN(len(c.members))
		ends := c.others(mid)
		what, heal := splitting(c, ends[:1], ends[1:])
		return what + " (bridge " + c.name(mid) + ")", heal
	}},
}

func (c *cluster) names(is []int) []string {
	out := make([]string, len(is))
	for k, i := range is {
		out[k] = c.name(i)
	}
	return out
}

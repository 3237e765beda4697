package faults

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// run is one suite's run: its seed (printed, and taken from
// METASTORE_FAULTS_SEED to rerun one), its length (METASTORE_FAULTS=long
// for make test-faults), and what it counted.
type run struct {
	t     *testing.T
	seed  uint64
	long  bool
	rng   *rand.Rand
	start time.Time

	mu     sync.Mutex
	counts map[string]int
}

func newRun(t *testing.T) *run {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("METASTORE_FAULTS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("METASTORE_FAULTS_SEED: %v", err)
		}
		seed = v
	}
	r := &run{t: t, seed: seed, long: os.Getenv("METASTORE_FAULTS") == "long", rng: rand.New(rand.NewPCG(seed, seed>>1|1)),
		start: time.Now(), counts: map[string]int{}}
	t.Logf("seed %d (rerun: METASTORE_FAULTS_SEED=%d go test ./faults/ -run '^%s$')", seed, seed, t.Name())
	t.Cleanup(func() {
		t.Logf("%s in %v: %s", t.Name(), time.Since(r.start).Round(time.Millisecond), r.summary())
		if t.Failed() {
			t.Logf("FAILED with seed %d: rerun with METASTORE_FAULTS_SEED=%d", seed, seed)
		}
	})
	return r
}

// pick is the short or the long run's value.
func (r *run) pick(short, long int) int {
	if r.long {
		return long
	}
	return short
}

// unsynced is how much of what a disk had not synced a power loss keeps:
// nothing half the time, else a random percentage.
func (r *run) unsynced() int {
	if r.rng.IntN(2) == 0 {
		return 0
	}
	return 1 + r.rng.IntN(100)
}

func (r *run) count(what string, n int) {
	r.mu.Lock()
	r.counts[what] += n
	r.mu.Unlock()
}

func (r *run) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := make([]string, 0, len(r.counts))
	for k := range r.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, r.counts[k])
	}
	return strings.Join(parts, " ")
}

// report fails the test with a crash point's violations (the first few,
// without repeats).
func (r *run) report(point string, violations []string) {
	r.t.Helper()
	if len(violations) == 0 {
		return
	}
	seen := map[string]bool{}
	var out []string
	for _, v := range violations {
		if !seen[v] && len(out) < 15 {
			out = append(out, "  "+v)
		}
		seen[v] = true
	}
	r.t.Fatalf("%s (seed %d): %d violations:\n%s", point, r.seed, len(seen), strings.Join(out, "\n"))
}

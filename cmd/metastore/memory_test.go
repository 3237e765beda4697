package main

import (
	"errors"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestMemoryBudgetSources(t *testing.T) {
	noEnv := func(string) string { return "" }
	files := func(m map[string]string) func(string) ([]byte, error) {
		return func(name string) ([]byte, error) {
			if v, ok := m[name]; ok {
				return []byte(v), nil
			}
			return nil, os.ErrNotExist
		}
	}
	v2 := "/sys/fs/cgroup/memory.max"
	v1 := "/sys/fs/cgroup/memory/memory.limit_in_bytes"
	for _, tc := range []struct {
		name   string
		flag   int64
		files  map[string]string
		want   int64
		source string
	}{
		{"nothing", 0, nil, 0, ""},
		{"flag wins over the cgroup", 512 << 20, map[string]string{v2: "1073741824\n"}, 512 << 20, "--memory-limit-bytes"},
		{"cgroup v2", 0, map[string]string{v2: "1073741824\n"}, 1 << 30, v2},
		{"cgroup v2 unlimited", 0, map[string]string{v2: "max\n"}, 0, ""},
		{"cgroup v1", 0, map[string]string{v1: "268435456\n"}, 256 << 20, v1},
		{"cgroup v1 unlimited", 0, map[string]string{v1: "9223372036854771712\n"}, 0, ""},
	} {
		got, source := memoryBudget(tc.flag, noEnv, files(tc.files))
		if got != tc.want || source != tc.source {
			t.Errorf("%s: %d from %q; want %d from %q", tc.name, got, source, tc.want, tc.source)
		}
	}
}

// GOMEMLIMIT is read as the runtime parsed it.
func TestMemoryBudgetFromGOMEMLIMIT(t *testing.T) {
	old := debug.SetMemoryLimit(300 << 20)
	defer debug.SetMemoryLimit(old)
	env := func(k string) string {
		if k == "GOMEMLIMIT" {
			return "300MiB"
		}
		return ""
	}
	noFiles := func(string) ([]byte, error) { return nil, errors.New("none") }
	if got, source := memoryBudget(0, env, noFiles); got != 300<<20 || source != "GOMEMLIMIT" {
		t.Fatalf("%d from %q; want %d from GOMEMLIMIT", got, source, 300<<20)
	}
}

func TestGoLimitFollowsLiveHeap(t *testing.T) {
	for _, tc := range []struct {
		live, overhead uint64
		want           int64
	}{
		{0, 0, goFloor},
		{30 << 20, 10 << 20, goFloor},
		{100 << 20, 0, 200 << 20},
		// The stacks of 2000 stream workers and a small live heap: the
		// heap may still grow by its live size.
		{16 << 20, 77 << 20, 109 << 20},
		{math.MaxUint64, math.MaxUint64, math.MaxInt64/4*2 + math.MaxInt64/4},
	} {
		if got := goLimitFor(tc.live, tc.overhead); got != tc.want {
			t.Errorf("live %d, overhead %d: limit %d; want %d", tc.live, tc.overhead, got, tc.want)
		}
	}
}

func TestLimitStepsDownAfterABurst(t *testing.T) {
	for _, tc := range []struct{ prev, target, want int64 }{
		{0, goFloor, goFloor},               // the first: as called for
		{200 << 20, 400 << 20, 400 << 20},   // up: at once
		{400 << 20, 400 << 20, 400 << 20},   // level
		{500 << 20, 100 << 20, 400 << 20},   // down: a quarter of the gap
		{101 << 20, 100 << 20, 100 << 20},   // ... and at least 1 MiB
		{100<<20 + 3, 100 << 20, 100 << 20}, // never below the target
	} {
		if got := stepLimit(tc.prev, tc.target); got != tc.want {
			t.Errorf("from %d towards %d: %d; want %d", tc.prev, tc.target, got, tc.want)
		}
	}
	// A burst gone: the limit reaches the live heap's in steps.
	limit, steps := int64(1<<30), 0
	for ; limit > goFloor && steps < 100; steps++ {
		limit = stepLimit(limit, goFloor)
	}
	if limit != goFloor || steps < 5 {
		t.Errorf("1 GiB to the floor: %d after %d steps", limit, steps)
	}
}

// The limit leaves a live heap beyond the floor room to grow by its
// size, and is set again after every collection.
func TestLimitFollowsLiveHeap(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	hold := make([][]byte, 0, 160)
	for range 160 {
		hold = append(hold, make([]byte, 1<<20))
	}
	runtime.GC()
	limitSetter()()
	if got := debug.SetMemoryLimit(-1); got < 2*160<<20 {
		t.Fatalf("limit %d with 160 MiB live; want at least %d", got, 2*160<<20)
	}
	runtime.KeepAlive(hold)

	collected := make(chan struct{}, 1)
	runs := 0
	afterEachGC(func() bool {
		runs++
		collected <- struct{}{}
		return runs < 2
	})
	for range 2 {
		runtime.GC()
		select {
		case <-collected:
		case <-time.After(10 * time.Second):
			t.Fatal("no call after a collection")
		}
	}
}

package main

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/metastore/metastore/storeactor"
)

// The member's memory: a budget is found (--memory-limit-bytes, else
// GOMEMLIMIT, else the cgroup's memory limit), storeactor.SizeMemory
// divides it between pebble, the store's caches and the Go heap, and the
// Go heap's soft limit is set here, for the process.
//
// Without a budget the Go heap still gets a soft limit, moved with the
// heap after every collection: what the runtime holds outside the heap
// (goroutine stacks, its metadata: these count against the limit) plus
// twice the live heap, and never below goFloor. MetaStore collects at
// GOGC 200 (3x the live heap: less CPU per request); the limit brings
// that down to 2x once the live heap passes a third of the floor, and
// makes the runtime return to the kernel the free memory a burst left
// behind rather than keep it (etcd's RSS under the same writes is the
// bar, `make bench` row q). What must hold: the limit always leaves the
// heap room to grow by its live size, or the collector runs without
// pause. Twice the live heap alone did not: the stacks of 2048 gRPC
// stream workers (as many as there were then: 56 MB, kept grown, see the
// Makefile's gcshrinkstackoff) under a 96 MiB limit left a 16 MB live
// heap 3 MB to grow in, and 700 collections a second cut JSON reads 5x.
// A GOGC of the operator's turns it off: their tuning stands.

// goFloor is the lowest soft limit the Go heap gets without a budget.
const goFloor = 96 << 20

// memoryBudget returns the member's memory budget in bytes and where it
// comes from; 0 when nothing limits it. flag is --memory-limit-bytes.
func memoryBudget(flag int64, getenv func(string) string, readFile func(string) ([]byte, error)) (int64, string) {
	if flag > 0 {
		return flag, "--memory-limit-bytes"
	}
	if getenv("GOMEMLIMIT") != "" {
		// The runtime parsed it (and refused to start on a bad one).
		if l := debug.SetMemoryLimit(-1); l > 0 && l < math.MaxInt64 {
			return l, "GOMEMLIMIT"
		}
	}
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := readFile(f)
		if err != nil {
			continue
		}
		// "max" (v2) or a huge number (v1) mean no limit.
		l, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err == nil && l > 0 && l < 1<<60 {
			return l, f
		}
	}
	return 0, ""
}

// setUpMemory sizes the member's memory from its budget, sets the Go
// heap's soft limit, logs what it chose, and returns the sizes for the
// node. Without a budget it starts the limit's follower of the live heap
// (stopped by the returned func).
func setUpMemory(flag int64, lg *zap.Logger) (storeactor.MemorySizes, func()) {
	budget, source := memoryBudget(flag, os.Getenv, os.ReadFile)
	sizes := storeactor.SizeMemory(budget)
	stop := func() {}
	follow := false
	switch {
	case sizes.GoLimit > 0:
		debug.SetMemoryLimit(sizes.GoLimit)
	case os.Getenv("GOGC") == "":
		stop = followLiveHeap()
		follow = true
	}
	fields := []zap.Field{
		zap.Uint64("memtable-bytes", sizes.MemTable),
		zap.Int64("block-cache-bytes", sizes.BlockCache),
		zap.Int("latest-cache-entries", 2*sizes.LatestHalf),
		zap.Int("key-filter-max-bytes", sizes.KeyFilter),
		zap.Int("count-mirror-max-bytes", sizes.CountMirror),
	}
	if budget > 0 {
		fields = append(fields, zap.Int64("memory-limit-bytes", budget), zap.String("memory-limit-from", source),
			zap.Int64("go-memory-limit-bytes", sizes.GoLimit))
	} else if follow {
		fields = append(fields, zap.String("go-memory-limit", "2x live heap + runtime overhead, at least 96 MiB"))
	}
	if n := mallocArenas(); n > 0 {
		fields = append(fields, zap.Int("malloc-arenas", n))
	}
	lg.Info("sized memory", fields...)
	return sizes, stop
}

// followLiveHeap sets the Go heap's soft limit at once and after every
// garbage collection, so that it follows a burst as fast as the heap
// grows, not a timer later.
func followLiveHeap() (stop func()) {
	set := limitSetter()
	set()
	var stopped atomic.Bool
	afterEachGC(func() bool {
		if stopped.Load() {
			return false
		}
		set()
		return true
	})
	return func() { stopped.Store(true) }
}

// limitSetter returns a func that sets the Go heap's soft limit to
// goLimitFor the live heap of the last collection and the runtime's
// memory outside the heap's objects now.
func limitSetter() func() {
	sample := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	// The limit set last (0 before the first). The first call is on the
	// starting goroutine, the rest on the finalizer's: atomic, so that no
	// ordering between the two needs proving.
	var prev atomic.Int64
	return func() {
		metrics.Read(sample)
		var v [5]uint64
		for i, s := range sample {
			if s.Value.Kind() != metrics.KindUint64 {
				return
			}
			v[i] = s.Value.Uint64()
		}
		live, total, released, objects, free := v[0], v[1], v[2], v[3], v[4]
		limit := stepLimit(prev.Load(), goLimitFor(live, total-min(total, released+objects+free)))
		prev.Store(limit)
		debug.SetMemoryLimit(limit)
	}
}

// stepLimit is the soft limit to set after a collection, given the one
// set before (0: none) and the one the live heap calls for: up at once,
// so the heap always has the room goLimitFor leaves it, but down only a
// quarter of the way (at least 1 MiB) each collection. After a burst the
// live heap falls at once while the memory the process holds does not; a
// limit dropped below that at once makes allocations give pages back to
// the kernel synchronously (the runtime scavenges in the allocation
// path), which after `make bench` row e's burst made row f's watch events
// 2-3x slower for seconds. Coming down in steps, the limit lets the
// background scavenger return the pages instead; RSS after a burst (row
// q) falls as before.
func stepLimit(prev, target int64) int64 {
	if target >= prev {
		return target
	}
	return max(target, prev-max((prev-target)/4, 1<<20))
}

// afterEachGC runs f on the runtime's finalizer goroutine after every
// garbage collection for as long as f returns true: a finalizer on an
// object nothing references runs once a collection finds it unreachable,
// and re-arming it on the same object waits for the next one.
func afterEachGC(f func() bool) {
	type sentinel struct{ _ [16]byte } // not zero-sized: those are never collected
	var rearm func(*sentinel)
	rearm = func(s *sentinel) {
		if f() {
			runtime.SetFinalizer(s, rearm)
		}
	}
	runtime.SetFinalizer(&sentinel{}, rearm)
}

// goLimitFor is the Go heap's soft limit for a live heap of live bytes
// and overhead bytes the runtime holds outside the heap's objects.
func goLimitFor(live, overhead uint64) int64 {
	const most = math.MaxInt64 / 4
	return max(goFloor, int64(min(live, most))*2+int64(min(overhead, most)))
}

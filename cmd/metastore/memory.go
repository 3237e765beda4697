package main

import (
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/metastore/metastore/storeactor"
)

// The member's memory: a budget is found (--memory-limit-bytes, else
// GOMEMLIMIT, else the cgroup's memory limit), storeactor.SizeMemory
// divides it between pebble, the store's caches and the Go heap, and the
// Go heap's soft limit is set here, for the process.
//
// Without a budget the Go heap still gets a soft limit, moved with the
// heap: twice the live heap, and never below goFloor. MetaStore collects
// at GOGC 200 (3x the live heap: less CPU per request); the limit brings
// that down to 2x once the live heap passes a third of the floor, and
// makes the runtime return to the kernel the free memory a burst left
// behind rather than keep it (etcd's RSS under the same writes is the
// bar, `make bench` row q). Because it follows the live heap it never
// makes the collector run continuously, as a fixed limit would once the
// live heap reached it (100k watchers, say). A GOGC of the operator's
// turns it off: their tuning stands.

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
		stop = followLiveHeap(time.Second)
		follow = true
	}
	fields := []zap.Field{
		zap.Uint64("memtable-bytes", sizes.MemTable),
		zap.Int64("block-cache-bytes", sizes.BlockCache),
		zap.Int("latest-cache-entries", 2*sizes.LatestHalf),
	}
	if budget > 0 {
		fields = append(fields, zap.Int64("memory-limit-bytes", budget), zap.String("memory-limit-from", source),
			zap.Int64("go-memory-limit-bytes", sizes.GoLimit))
	} else if follow {
		fields = append(fields, zap.String("go-memory-limit", "2x live heap, at least 96 MiB"))
	}
	lg.Info("sized memory", fields...)
	return sizes, stop
}

// followLiveHeap sets the Go heap's soft limit to goLimitFor(live heap)
// every interval (and at once).
func followLiveHeap(interval time.Duration) (stop func()) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	set := func() {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			debug.SetMemoryLimit(goLimitFor(sample[0].Value.Uint64()))
		}
	}
	set()
	t := time.NewTicker(interval)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-t.C:
				set()
			case <-done:
				return
			}
		}
	}()
	return func() { t.Stop(); close(done) }
}

// goLimitFor is the Go heap's soft limit for a live heap of live bytes.
func goLimitFor(live uint64) int64 {
	return max(goFloor, int64(min(live, math.MaxInt64/2))*2)
}

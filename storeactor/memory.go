package storeactor

// How the member's memory is divided. What the store keeps in memory
// besides the Go heap's working set is pebble's memtables, pebble's block
// cache and the store actor's cache of recently written keys' newest
// versions; none of them grows with the number of keys, so a member's
// memory is set by these sizes and the Go heap, not by its data.
//
// Without a limit the sizes are lean: a member should take no more memory
// than etcd does under the same writes (docs/benchmarks.md, `make bench`
// rows q and r). The block cache is small because pebble reads its tables
// with pread: a block that left the cache is usually still in the
// kernel's page cache, so a miss costs a decompression, not a disk read
// (etcd maps its whole file, and counts it in its RSS). With a limit
// (--memory-limit-bytes, GOMEMLIMIT, or the cgroup's memory.max), each
// part grows with it, and the Go heap gets the rest as its soft limit.

// MemorySizes are the sizes the store and pebble are opened with.
type MemorySizes struct {
	// MemTable is pebble's memtable size. Two may exist at once (one
	// being flushed), and pebble reserves their size in the block cache.
	MemTable uint64
	// BlockCache is what pebble's block cache may hold beyond the
	// memtables' reservations (pebble's CacheSize is this plus two
	// memtables: with a cache only as large as the memtables, a flush
	// leaves it nothing).
	BlockCache int64
	// LatestHalf is each of the two generations of the store actor's
	// cache of recently written keys' newest versions, in entries.
	LatestHalf int
	// KeyFilter is the most the store's filter of keys never written may
	// take (keyfilter.go): about 1.25 bytes a key, dropped past this.
	KeyFilter int
	// CountMirror is the most the store's mirror of the count index's
	// level 1 may take (countwrite.go): about 2 bytes a key, read from
	// pebble past this.
	CountMirror int
	// RaftLog is about how many bytes of entries the raft log keeps in
	// memory (raftactor.Config.LogBytes): raft reads its log from memory,
	// and without a bound in bytes a log of snapshot-count large entries
	// outgrows everything else here.
	RaftLog uint64
	// GoLimit is the Go heap's soft limit (runtime/debug.SetMemoryLimit):
	// the limit less what pebble takes; 0 when there is no limit.
	GoLimit int64
}

const (
	leanMemTable    = 8 << 20
	leanBlockCache  = 16 << 20
	leanLatestHalf  = 32 << 10
	leanRaftLog     = 64 << 20
	leanKeyFilter   = 32 << 20
	leanCountMirror = 32 << 20

	minMemTable    = 4 << 20
	maxMemTable    = 64 << 20
	minLatestHalf  = 8 << 10
	maxLatestHalf  = 1 << 20
	maxRaftLog     = 1 << 30
	maxKeyFilter   = 1 << 30
	maxCountMirror = 1 << 30
	// With a budget, the structures kept in the Go heap scale down with
	// it below their lean sizes, to these floors: their lean sizes
	// together (128 MiB) would fill the Go heap of a small budget and
	// leave the collector running without pause.
	minRaftLog = 8 << 20
	minHeapCap = 1 << 20 // key filter, count mirror
	// minGoLimit keeps the Go heap's soft limit from starving the
	// request paths when the limit is small: below it, the garbage
	// collector would run continuously.
	minGoLimit = 64 << 20
)

// SizeMemory divides a memory limit in bytes (0: none) between pebble,
// the store's caches and the Go heap. With a limit: a memtable of 1/64 of
// it (4-64 MiB), a block cache of 1/8, a newest-version cache of one
// entry a generation per 4 KiB, a raft log of 1/8 in memory (8 MiB - 1
// GiB, part of the Go heap), a key filter and a count index mirror of 1/32
// each (1 MiB - 1 GiB, part of the Go heap too), and the rest, at least
// 64 MiB, for the Go heap. Those three take at most about a quarter of
// the Go heap, so requests keep the rest.
func SizeMemory(limit int64) MemorySizes {
	if limit <= 0 {
		return MemorySizes{MemTable: leanMemTable, BlockCache: leanBlockCache, LatestHalf: leanLatestHalf, RaftLog: leanRaftLog,
			KeyFilter: leanKeyFilter, CountMirror: leanCountMirror}
	}
	s := MemorySizes{
		MemTable:    uint64(min(max(limit/64, minMemTable), maxMemTable)),
		BlockCache:  max(limit/8, leanBlockCache),
		LatestHalf:  int(min(max(limit/4096, minLatestHalf), maxLatestHalf)),
		RaftLog:     uint64(min(max(limit/8, minRaftLog), maxRaftLog)),
		KeyFilter:   int(min(max(limit/32, minHeapCap), maxKeyFilter)),
		CountMirror: int(min(max(limit/32, minHeapCap), maxCountMirror)),
	}
	s.GoLimit = max(limit-s.PebbleBytes(), minGoLimit)
	return s
}

// PebbleBytes is the most pebble's memtables and block cache hold
// together: its cache size, which the memtables are reserved in.
func (s MemorySizes) PebbleBytes() int64 { return s.BlockCache + 2*int64(s.MemTable) }

// Package storeactor is MetaStore's MVCC key-value state machine on pebble.
//
// The Store actor is the only writer: it applies committed raft entries in
// batches and publishes an immutable View (revision, compaction point,
// applied index) after each batch. Reads never enter its mailbox: a Reader
// serves them on the caller's goroutine from pebble iterators, so every core
// serves reads. The index lives in pebble too (see keys.go); nothing in
// memory grows with the number of keys.
package storeactor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
)

// View is the store's state as last published. It never changes once
// published; the Store swaps in a new one after each apply batch.
type View struct {
	Rev         int64  // current main revision; 1 in an empty store
	CompactRev  int64  // revisions below this are compacted; -1 if never
	CompactDone int64  // physical compaction has finished up to here; -1 if never
	Applied     uint64 // last raft index applied
	AppliedTerm uint64 // term of that entry
	// LiveBytes is the size of the MVCC data a compaction has not removed:
	// every version ('k' key and record) and history entry ('h') written,
	// less what physical compaction deleted. It is the quota's measure
	// (--quota-backend-bytes): unlike a file size it falls as soon as a
	// compaction has run, without waiting for pebble to rewrite its files.
	// Counted in the same batches as the writes and deletes it follows, so
	// it survives crashes exactly.
	LiveBytes int64
	// Keys is the number of keys with a live (not deleted) newest
	// version: counted by the Store as it applies, from a walk of the 'l'
	// entries when it starts (0 in the View NewReader loads).
	Keys    int64
	NoSpace bool // a NOSPACE alarm is active: writes are refused
	Corrupt bool // a CORRUPT alarm is active: applies are refused
}

// OpenPebble opens the node's pebble DB in dir, or on an in-memory FS when
// inMemory is set (tests and demos run the same code without a disk),
// with pebble's logging discarded.
func OpenPebble(dir string, inMemory bool) (*pebble.DB, error) {
	fs := vfs.Default
	if inMemory {
		fs = vfs.NewMem()
	}
	return OpenPebbleFS(fs, dir)
}

// OpenOption configures OpenPebbleFS.
type OpenOption func(*openConfig)

type openConfig struct {
	lg        *zap.Logger
	onFatal   func(error)
	cacheless bool
	memory    MemorySizes
	walDir    string
}

// WithWALDir has pebble write its WAL in dir (on the same fs) instead of
// the DB's directory. pebble records it, and refuses to open the DB later
// with another WAL dir: the WAL holds writes no table has yet.
func WithWALDir(dir string) OpenOption {
	return func(c *openConfig) { c.walDir = dir }
}

// WithMemory opens the DB with the memtable and block cache sizes of m
// (SizeMemory) instead of the lean ones.
func WithMemory(m MemorySizes) OpenOption {
	return func(c *openConfig) { c.memory = m }
}

// WithoutBlockCache opens the DB with a block cache too small to hold a
// block, so that every read goes to the sstable files: tests that fail
// those reads need it, as a block some background read cached would
// otherwise answer in the file's place.
func WithoutBlockCache() OpenOption {
	return func(c *openConfig) { c.cacheless = true }
}

// WithPebbleLogger sends pebble's messages and events to lg (see
// pebblelog.go); without it they are discarded.
func WithPebbleLogger(lg *zap.Logger) OpenOption {
	return func(c *openConfig) { c.lg = lg }
}

// WithOnFatal has fn told, on the failing goroutine and before pebble
// panics, that the DB cannot go on: a write or sync of its WAL failed
// (pebble then fails every later sync, but still applies unsynced
// writes to its memtable, where reads find them), or it met corruption.
func WithOnFatal(fn func(error)) OpenOption {
	return func(c *openConfig) { c.onFatal = fn }
}

// OpenPebbleFS opens the node's pebble DB in dir on fs, with pebble's disk
// health checks on (fs is wrapped): its background errors, disk
// operations slower than 5 s and write stalls are logged (with
// WithPebbleLogger) and write stalls counted.
func OpenPebbleFS(fs vfs.FS, dir string, opts ...OpenOption) (*pebble.DB, error) {
	c := openConfig{}
	for _, o := range opts {
		o(&c)
	}
	if c.lg == nil {
		c.lg = zap.NewNop()
	}
	po := PebbleOptions()
	if c.memory.MemTable > 0 {
		po.MemTableSize = c.memory.MemTable
		po.CacheSize = c.memory.PebbleBytes()
	}
	po.FS = fs
	po.WALDir = c.walDir
	if c.cacheless {
		po.CacheSize = 1 // pebble rejects entries larger than the cache
	}
	po.Logger = pebbleLogger{l: c.lg.Sugar(), onFatal: c.onFatal}
	po.AddEventListener(eventListener(c.lg))
	po.WithFSDefaults() // disk health checks: DiskSlow events
	return pebble.Open(dir, po)
}

// PebbleOptions are the options the node's DB is opened with (tests that
// need their own FS start from these).
func PebbleOptions() *pebble.Options {
	// pebble's default block cache (8 MiB) made a put's lookup of the
	// version it replaces decompress a data block on most calls once the
	// key space outgrew it; SizeMemory says what the cache and the
	// memtables get (memory.go), these are its sizes without a limit.
	lean := SizeMemory(0)
	opts := &pebble.Options{
		CacheSize:                   lean.PebbleBytes(),
		MemTableSize:                lean.MemTable,
		MemTableStopWritesThreshold: 4,
		L0CompactionThreshold:       4,
		L0StopWritesThreshold:       1000,
		BytesPerSync:                1 << 20,
		Logger:                      quietLogger{},
	}
	opts.Levels[0].BlockSize = 32 << 10
	// Bloom filters let a point lookup (every put's read of the version it
	// replaces, every single-key range) skip the sstables that do not hold
	// the key instead of reading their index and data blocks. Later levels
	// inherit L0's policy.
	opts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	return opts
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(errors.New("pebble: fatal: " + format))
}

// loadView reads the persisted store state.
func loadView(db pebble.Reader) (View, error) {
	v := View{Rev: 1, CompactRev: -1, CompactDone: -1}
	if b, ok, err := getValue(db, metaRev); err != nil {
		return v, err
	} else if ok {
		v.Rev = int64(binary.BigEndian.Uint64(b))
	}
	if b, ok, err := getValue(db, metaCompact); err != nil {
		return v, err
	} else if ok {
		v.CompactRev = int64(binary.BigEndian.Uint64(b))
	}
	if b, ok, err := getValue(db, metaCompactDone); err != nil {
		return v, err
	} else if ok {
		v.CompactDone = int64(binary.BigEndian.Uint64(b))
	}
	if b, ok, err := getValue(db, metaLive); err != nil {
		return v, err
	} else if ok {
		v.LiveBytes = int64(binary.BigEndian.Uint64(b))
	} else {
		// A store from before the count: measure it once.
		v.LiveBytes = spanBytes(db, []byte{prefixKey}, []byte{prefixKey + 1}) +
			spanBytes(db, historySpaceLow, historySpaceHigh)
	}
	var err error
	if v.NoSpace, err = alarmActive(db, pb.AlarmType_NOSPACE); err != nil {
		return v, err
	}
	if v.Corrupt, err = alarmActive(db, pb.AlarmType_CORRUPT); err != nil {
		return v, err
	}
	if b, ok, err := getValue(db, metaApplied); err != nil {
		return v, err
	} else if ok {
		v.Applied = binary.BigEndian.Uint64(b[:8])
		v.AppliedTerm = binary.BigEndian.Uint64(b[8:16])
	}
	return v, nil
}

// getValue reads a copy of key's value and whether it exists.
func getValue(db pebble.Reader, key []byte) ([]byte, bool, error) {
	b, closer, err := db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), b...)
	return out, true, closer.Close()
}

// mustRead is how the Store's own reads (its apply batch, its start) take
// a failed read: they panic, so that the Store restarts and replays rather
// than act on what it could not read, unlike the members that could. The
// Reader's methods return the error instead: a request fails, the member
// serves on.
func mustRead[T any](v T, err error) T {
	must(err)
	return v
}

func putU64(w pebble.Writer, key []byte, v uint64) error {
	return w.Set(key, binary.BigEndian.AppendUint64(nil, v), nil)
}

// viewRef is the cell through which the Store publishes its View, and the
// count of snapshot installs begun and finished (odd while one runs).
//
// Reads fix their revision from the View and read the live DB: writes
// above that revision are invisible to them, so an apply batch committing
// meanwhile changes nothing they see. An installed snapshot is different:
// it replaces the whole key space under the View still published (the
// leader's compaction may have removed versions an old revision needs).
// So a read is valid only if no install overlapped it (a seqlock): it
// takes readBegin's count before loading the View and is done again unless
// readValid still finds that count afterwards.
type viewRef struct {
	atomic.Pointer[View]
	installs atomic.Uint64
}

// installBegin and installEnd bracket a change of the DB's contents under
// the published View; installEnd comes after the new View is published.
func (c *viewRef) installBegin()    { c.installs.Add(1) }
func (c *viewRef) installEnd()      { c.installs.Add(1) }
func (c *viewRef) installing() bool { return c.installs.Load()&1 == 1 }

// readBegin waits out an install in progress and returns the count a
// read then started under.
func (c *viewRef) readBegin() uint64 {
	for {
		if n := c.installs.Load(); n&1 == 0 {
			return n
		}
		time.Sleep(time.Millisecond)
	}
}

// readValid reports whether no install began since readBegin returned n.
func (c *viewRef) readValid(n uint64) bool { return c.installs.Load() == n }

// SyncWAL makes every write to db so far durable with one synced, empty
// write (a LogData record), and returns the failure of pebble's WAL if it
// has one.
func SyncWAL(db *pebble.DB) error {
	b := db.NewBatch()
	defer b.Close()
	if err := b.LogData([]byte("sync"), nil); err != nil {
		return err
	}
	return Commit(b, pebble.Sync)
}

// Commit commits b, turning the panic pebble's fatal logger raises on a
// failed WAL write or sync (pebble does not return it from Commit) into
// an error, for callers that must stop the member through their own
// failure path rather than panic into a restart that goes on from a write
// that failed.
func Commit(b *pebble.Batch, opts *pebble.WriteOptions) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("pebble: %v", p)
		}
	}()
	return b.Commit(opts)
}

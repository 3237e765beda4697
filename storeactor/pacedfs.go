package storeactor

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/metastore/metastore/raftwal"
)

// CompactionPacer slows pebble's compactions down while clients are
// writing, by making the writes of the sstables compactions produce wait
// for a token bucket. Defragment turns it on for its manual compaction.
//
// Why: a client write is acknowledged after the fsync of the raft log's
// WAL, and that fsync waits behind whatever else the disk is writing. A full-speed
// manual compaction writes continuously, so one put in twenty waited
// behind its write-back and put p99 went to 4x its idle value. Paced, the
// compaction leaves the disk (and the CPU it spends decoding and encoding
// blocks, held back by the same waits) mostly to client requests.
//
// "Clients are writing" means a WAL (the raft log's, or pebble's) was
// synced within foregroundWindow: every acknowledged write syncs the raft
// log's. With no writes the compaction runs
// at full speed, so a defragmentation of an idle store is as quick as it
// can be.
//
// Only files pebble creates for compactions are paced: memtable flushes
// and the WALs never wait on the pacer.
type CompactionPacer struct {
	now   func() time.Time
	sleep func(time.Duration)

	lastWALSync atomic.Int64 // unix nanos of the latest WAL sync

	mu     sync.Mutex
	rate   float64 // bytes per second; 0 = not pacing
	tokens float64 // bytes that may be written now, at most pacerBurst
	last   time.Time
}

const (
	// pacerBurst is how many bytes a paced compaction may write at once.
	pacerBurst = 256 << 10
	// foregroundWindow is how long after a WAL sync compactions stay paced.
	foregroundWindow = 100 * time.Millisecond
)

// NewCompactionPacer returns a pacer that is off, on the real clock.
func NewCompactionPacer() *CompactionPacer {
	return &CompactionPacer{now: time.Now, sleep: time.Sleep}
}

// FS wraps fs so that the compaction outputs created through it are paced
// and the WALs' syncs are seen (pebble's, and the raft log's when it is
// opened on the same FS).
func (p *CompactionPacer) FS(fs vfs.FS) vfs.FS { return pacedFS{FS: fs, p: p} }

// Limit paces compaction writes to bytesPerSec, while clients write,
// until the returned func is called. bytesPerSec <= 0 leaves them unpaced.
func (p *CompactionPacer) Limit(bytesPerSec int64) (restore func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := p.rate
	p.rate = float64(max(bytesPerSec, 0))
	p.tokens, p.last = pacerBurst, p.now()
	return func() {
		p.mu.Lock()
		p.rate = prev
		p.mu.Unlock()
	}
}

// setRate changes the pace of the Limit in effect.
func (p *CompactionPacer) setRate(bytesPerSec int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate = float64(max(bytesPerSec, 0))
}

// wait blocks until a compaction may write n bytes.
func (p *CompactionPacer) wait(n int) {
	p.mu.Lock()
	if p.rate == 0 {
		p.mu.Unlock()
		return
	}
	now := p.now()
	p.tokens = min(pacerBurst, p.tokens+now.Sub(p.last).Seconds()*p.rate)
	p.last = now
	if now.Sub(time.Unix(0, p.lastWALSync.Load())) > foregroundWindow {
		p.mu.Unlock() // nobody waits for the disk: full speed
		return
	}
	p.tokens -= float64(n)
	var d time.Duration
	if p.tokens < 0 {
		d = time.Duration(-p.tokens / p.rate * float64(time.Second))
	}
	p.mu.Unlock()
	if d > 0 {
		p.sleep(d)
	}
}

func (p *CompactionPacer) walSynced() { p.lastWALSync.Store(p.now().UnixNano()) }

// The categories pebble creates compaction outputs and WAL files with.
const (
	compactionWriteCategory vfs.DiskWriteCategory = "pebble-compaction"
	walWriteCategory        vfs.DiskWriteCategory = "pebble-wal"
)

type pacedFS struct {
	vfs.FS
	p *CompactionPacer
}

func (fs pacedFS) Unwrap() vfs.FS { return fs.FS }

func (fs pacedFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	return fs.wrap(f, err, category)
}

func (fs pacedFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	return fs.wrap(f, err, category)
}

func (fs pacedFS) wrap(f vfs.File, err error, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err != nil {
		return f, err
	}
	switch category {
	case compactionWriteCategory:
		return pacedFile{File: f, p: fs.p}, nil
	case walWriteCategory, raftwal.WriteCategory:
		return walFile{File: f, p: fs.p}, nil
	}
	return f, nil
}

// pacedFile is a compaction output: its writes wait for the pacer.
type pacedFile struct {
	vfs.File
	p *CompactionPacer
}

func (f pacedFile) Write(b []byte) (int, error) {
	f.p.wait(len(b))
	return f.File.Write(b)
}

// walFile is a WAL file: its syncs tell the pacer clients are writing.
type walFile struct {
	vfs.File
	p *CompactionPacer
}

func (f walFile) Sync() error {
	f.p.walSynced()
	return f.File.Sync()
}

func (f walFile) SyncData() error {
	f.p.walSynced()
	return f.File.SyncData()
}

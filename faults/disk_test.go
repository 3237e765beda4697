package faults

import (
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// A disk is one member's disk: pebble's crashable in-memory filesystem,
// reached through FS, which
//
//   - holds the disk's power (shared by the disks that lose it together)
//     for the length of every operation that changes what a crash would
//     keep, so that a power loss (power.cut) clones every disk at one
//     instant, with no write or sync half done on any of them;
//   - shows each of those operations, before it runs and outside the
//     power's lock, to the disk's watcher, which may cut the power right
//     there (in the middle of a snapshot install, a compaction, a log
//     truncation).
//
// A disk's memory is replaced when the member restarts on a clone.
type disk struct {
	mem   *vfs.MemFS
	power *power
	watch atomic.Pointer[func(diskOp)]
}

// diskOp is an operation a disk is about to run: errorfs's kinds and
// paths (the source path of a link or rename), and for a write the bytes
// it writes (not to be kept).
type diskOp struct {
	kind errorfs.OpKind
	path string
	data []byte
}

func newDisk(p *power, mem *vfs.MemFS) *disk { return &disk{mem: mem, power: p} }

// FS is what the member runs on.
func (d *disk) FS() vfs.FS { return diskFS{FS: d.mem, d: d} }

// watchOps shows every later operation to fn (nil: none).
func (d *disk) watchOps(fn func(diskOp)) {
	if fn == nil {
		d.watch.Store(nil)
		return
	}
	d.watch.Store(&fn)
}

// do runs a changing operation under the disk's power.
func (d *disk) do(kind errorfs.OpKind, path string, data []byte, f func() error) error {
	if w := d.watch.Load(); w != nil {
		(*w)(diskOp{kind: kind, path: path, data: data})
	}
	d.power.mu.RLock()
	defer d.power.mu.RUnlock()
	return f()
}

// power is what a set of disks loses at once.
type power struct {
	mu sync.RWMutex // read: an operation under way on one of the disks; write: a power loss

	rngMu sync.Mutex
	rng   *rand.Rand // which unsynced blocks a crash keeps
}

func newPower(seed uint64) *power {
	return &power{rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
}

// loss is what a power loss left: each disk's clone, and what ran while
// every disk was down (e.g. the model's cut of the acknowledged writes).
type loss struct {
	clones   []*vfs.MemFS
	unsynced int // percent of the unsynced blocks and directory entries kept
}

// cut takes the disks down at one instant. Each clone holds what its disk
// had synced and, when unsynced > 0, that percentage of the rest, chosen
// at random. during runs while no disk can change: an acknowledgement
// counted then was for data synced before the cut.
func (p *power) cut(disks []*disk, unsynced int, during func()) loss {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rngMu.Lock()
	defer p.rngMu.Unlock()
	l := loss{unsynced: unsynced}
	for _, d := range disks {
		l.clones = append(l.clones, d.mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsynced, RNG: p.rng}))
	}
	if during != nil {
		during()
	}
	return l
}

// diskFS is a disk's FS: reads go straight to the memory, changes through
// disk.do.
type diskFS struct {
	vfs.FS
	d *disk
}

func (fs diskFS) Unwrap() vfs.FS { return fs.FS }

func (fs diskFS) file(f vfs.File, name string, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return diskFile{File: f, name: name, d: fs.d}, nil
}

func (fs diskFS) Create(name string, c vfs.DiskWriteCategory) (f vfs.File, err error) {
	err = fs.d.do(errorfs.OpCreate, name, nil, func() error { f, err = fs.FS.Create(name, c); return err })
	return fs.file(f, name, err)
}

func (fs diskFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (f vfs.File, err error) {
	err = fs.d.do(errorfs.OpOpen, name, nil, func() error { f, err = fs.FS.OpenReadWrite(name, c, opts...); return err })
	return fs.file(f, name, err)
}

func (fs diskFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (f vfs.File, err error) {
	err = fs.d.do(errorfs.OpReuseForWrite, oldname, nil, func() error {
		f, err = fs.FS.ReuseForWrite(oldname, newname, c)
		return err
	})
	return fs.file(f, newname, err)
}

// Open and OpenDir return files that can be synced (a directory is synced
// to make its entries durable).
func (fs diskFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.Open(name, opts...)
	return fs.file(f, name, err)
}

func (fs diskFS) OpenDir(name string) (vfs.File, error) {
	f, err := fs.FS.OpenDir(name)
	return fs.file(f, name, err)
}

func (fs diskFS) Link(oldname, newname string) error {
	return fs.d.do(errorfs.OpLink, oldname, nil, func() error { return fs.FS.Link(oldname, newname) })
}

func (fs diskFS) Remove(name string) error {
	return fs.d.do(errorfs.OpRemove, name, nil, func() error { return fs.FS.Remove(name) })
}

func (fs diskFS) RemoveAll(name string) error {
	return fs.d.do(errorfs.OpRemoveAll, name, nil, func() error { return fs.FS.RemoveAll(name) })
}

func (fs diskFS) Rename(oldname, newname string) error {
	return fs.d.do(errorfs.OpRename, oldname, nil, func() error { return fs.FS.Rename(oldname, newname) })
}

func (fs diskFS) MkdirAll(dir string, perm os.FileMode) error {
	return fs.d.do(errorfs.OpMkdirAll, dir, nil, func() error { return fs.FS.MkdirAll(dir, perm) })
}

func (fs diskFS) Lock(name string) (io.Closer, error) { return fs.FS.Lock(name) }

type diskFile struct {
	vfs.File
	name string
	d    *disk
}

func (f diskFile) Write(p []byte) (n int, err error) {
	err = f.d.do(errorfs.OpFileWrite, f.name, p, func() error { n, err = f.File.Write(p); return err })
	return n, err
}

func (f diskFile) WriteAt(p []byte, off int64) (n int, err error) {
	err = f.d.do(errorfs.OpFileWriteAt, f.name, p, func() error { n, err = f.File.WriteAt(p, off); return err })
	return n, err
}

func (f diskFile) Sync() error {
	return f.d.do(errorfs.OpFileSync, f.name, nil, f.File.Sync)
}

func (f diskFile) SyncData() error {
	return f.d.do(errorfs.OpFileSyncData, f.name, nil, f.File.SyncData)
}

func (f diskFile) SyncTo(length int64) (full bool, err error) {
	err = f.d.do(errorfs.OpFileSyncTo, f.name, nil, func() error { full, err = f.File.SyncTo(length); return err })
	return full, err
}

// faultSwitch injects the errors of the injector it is set to (none
// while nil): a member's disk fails while the test says so.
type faultSwitch struct {
	inj atomic.Pointer[errorfs.Injector]
}

func (f *faultSwitch) set(inj errorfs.Injector) {
	if inj == nil {
		f.inj.Store(nil)
		return
	}
	f.inj.Store(&inj)
}

func (f *faultSwitch) MaybeError(op errorfs.Op) error {
	if inj := f.inj.Load(); inj != nil {
		return (*inj).MaybeError(op)
	}
	return nil
}

func (f *faultSwitch) String() string { return "faultSwitch" }

package faults

import (
	"fmt"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// crashPoint is where a power loss strikes, and what it left.
type crashPoint struct {
	n      int
	kind   string
	during bool   // it struck in the middle of what kind names (not after it ended)
	at     diskOp // the disk operation it struck before, if armed
	loss   loss
	cut    int64 // acknowledgements that must survive
}

func (c crashPoint) String() string {
	when := "after"
	if c.during {
		when = "during"
	}
	s := fmt.Sprintf("crash point %d (%s, %s it, %d%% of unsynced data kept", c.n, c.kind, when, c.loss.unsynced)
	if c.at.path != "" {
		s += fmt.Sprintf(", before %s %s", diskOpNames[c.at.kind], c.at.path)
	}
	return s + ")"
}

// trigger cuts the power of its disks once: when pulled, or at the k-th
// disk operation an armed match accepts (from 1); fired delivers the
// loss. during runs while the power is down and returns the
// acknowledgements that must survive.
type trigger struct {
	p      *power
	disks  []*disk
	during func() int64
	once   sync.Once
	fired  chan crashPoint
}

func newTrigger(p *power, disks []*disk, during func() int64) *trigger {
	return &trigger{p: p, disks: disks, during: during, fired: make(chan crashPoint, 1)}
}

// arm pulls the trigger at the k-th operation on d that match accepts.
func (tr *trigger) arm(r *run, d *disk, k int, match func(diskOp) bool) {
	unsynced := r.unsynced()
	var mu sync.Mutex
	seen := 0
	d.watchOps(func(op diskOp) {
		mu.Lock()
		if match(op) {
			seen++
		}
		now := seen == k
		mu.Unlock()
		if now {
			tr.pullAt(unsynced, true, op)
		}
	})
}

// pull cuts the power now (unless it was cut already); during says
// whether what the crash point names was under way.
func (tr *trigger) pull(unsynced int, during bool) { tr.pullAt(unsynced, during, diskOp{}) }

func (tr *trigger) pullAt(unsynced int, during bool, at diskOp) {
	tr.once.Do(func() {
		for _, d := range tr.disks {
			d.watchOps(nil)
		}
		c := crashPoint{during: during, at: diskOp{kind: at.kind, path: at.path}}
		c.loss = tr.p.cut(tr.disks, unsynced, func() { c.cut = tr.during() })
		tr.fired <- c
	})
}

// walMarker is how a raft log truncation or snapshot install shows in
// pebble's WAL: the batch sets the raft actor's 'rs' key (a pebble batch
// record: kind Set, key length 2, key).
var walMarker = []byte{1, 2, 'r', 's'}

func isWAL(op diskOp) bool { return walPath(op.path) }

// walPath: the path is one of the DB's WAL files (a received checkpoint
// has .log files too).
func walPath(path string) bool {
	return strings.HasSuffix(path, ".log") && strings.Contains(path, "/member/pebble/") ||
		strings.HasSuffix(path, ".wal") && strings.Contains(path, "/member/raftlog/")
}

func isSync(op diskOp) bool {
	return op.kind == errorfs.OpFileSync || op.kind == errorfs.OpFileSyncData || op.kind == errorfs.OpFileSyncTo
}

// diskOpNames name the disk operations a crash point may strike before.
var diskOpNames = map[errorfs.OpKind]string{
	errorfs.OpCreate: "create", errorfs.OpLink: "link", errorfs.OpOpen: "open", errorfs.OpRemove: "remove",
	errorfs.OpRemoveAll: "remove-all", errorfs.OpRename: "rename", errorfs.OpReuseForWrite: "reuse",
	errorfs.OpMkdirAll: "mkdir", errorfs.OpFileWrite: "write", errorfs.OpFileWriteAt: "write-at",
	errorfs.OpFileSync: "sync", errorfs.OpFileSyncData: "sync-data", errorfs.OpFileSyncTo: "sync-to",
}

package storeactor

import (
	"context"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Defragmenter reclaims the space of overwritten, deleted and compacted
// data on demand (the Maintenance Defragment RPC): a manual compaction of
// the whole key space while reads and writes go on.
//
// The compaction is not parallelized and is paced (CompactionPacer) while
// clients write: parallel compactions took both cores of a small machine
// and pushed put p99 to 50x idle; one paced compaction keeps it under 2x
// at the cost of a longer defragmentation.
type Defragmenter struct {
	DB    *pebble.DB
	Pacer *CompactionPacer
	// Rate is the bytes per second the compaction writes while clients
	// write (0: unpaced).
	Rate int64

	mu sync.Mutex // one defragmentation at a time: each sets the pace
}

// Defragment compacts the whole store. A cancelled ctx stops it between
// compaction steps.
func (d *Defragmenter) Defragment(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.Pacer.Limit(d.Rate)()
	defragInflight.Set(1)
	defer defragInflight.Set(0)
	start := time.Now()
	err := d.DB.Compact(ctx, []byte{0}, []byte{0xff}, false)
	defragSec.Observe(time.Since(start).Seconds())
	return err
}

package storeactor

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/metastore/metastore/actors"
)

// Defragmenter reclaims the space of overwritten, deleted and compacted
// data on demand (the Maintenance Defragment RPC): a manual compaction of
// the whole key space while reads and writes go on.
//
// The compaction is not parallelized and is paced (CompactionPacer) while
// clients write: parallel compactions took both cores of a small machine
// and pushed put p99 to 50x idle; one paced compaction keeps it under 2x
// at the cost of a longer defragmentation.
//
// It is also a prometheus.Collector of the pace it runs with now
// (metastore_defrag_rate_bytes), for the member's registry.
type Defragmenter struct {
	DB    *pebble.DB
	Pacer *CompactionPacer
	// Rate is the bytes per second the compaction writes while clients
	// write (0: unpaced), --defrag-rate-bytes as the member started with;
	// SetRate changes it. Set it before the first use.
	Rate   int64
	Logger *zap.Logger // where SetRate logs; nil: nowhere

	mu sync.Mutex // one defragmentation at a time: each sets the pace

	pace    sync.Mutex // guards Rate and running
	running bool       // a defragmentation has the pacer limited to Rate
}

// Defragment compacts the whole store. A cancelled ctx stops it between
// compaction steps.
func (d *Defragmenter) Defragment(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pace.Lock()
	restore := d.Pacer.Limit(d.Rate)
	d.running = true
	d.pace.Unlock()
	defer func() {
		d.pace.Lock()
		d.running = false
		restore()
		d.pace.Unlock()
	}()
	defragInflight.Set(1)
	defer defragInflight.Set(0)
	start := time.Now()
	err := d.DB.Compact(ctx, []byte{0}, []byte{0xff}, false)
	defragSec.Observe(time.Since(start).Seconds())
	return err
}

// SetDefragRate changes --defrag-rate-bytes while the member runs
// (Defragmenter.SetRate).
type SetDefragRate struct{ Bytes int64 }

// Validate refuses a negative rate.
func (m *SetDefragRate) Validate() error {
	if m.Bytes < 0 {
		return fmt.Errorf("--defrag-rate-bytes must not be negative (got %d)", m.Bytes)
	}
	return nil
}

// SetRate puts m's pace in effect for the defragmentation running now, if
// any, and the next ones, and logs and counts the change
// (actors.SettingChanged); or returns Validate's error, changing nothing.
func (d *Defragmenter) SetRate(m *SetDefragRate) error {
	if err := m.Validate(); err != nil {
		return err
	}
	d.pace.Lock()
	defer d.pace.Unlock()
	old := d.Rate
	if old == m.Bytes {
		return nil
	}
	d.Rate = m.Bytes
	if d.running {
		d.Pacer.setRate(m.Bytes)
	}
	lg := d.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	actors.SettingChanged(lg, "defrag-rate-bytes", old, m.Bytes)
	return nil
}

var defragRateDesc = prometheus.NewDesc("metastore_defrag_rate_bytes",
	"Bytes per second a defragmentation writes while clients write (--defrag-rate-bytes; 0: unpaced).", nil, nil)

func (d *Defragmenter) Describe(ch chan<- *prometheus.Desc) { ch <- defragRateDesc }

func (d *Defragmenter) Collect(ch chan<- prometheus.Metric) {
	d.pace.Lock()
	rate := d.Rate
	d.pace.Unlock()
	ch <- prometheus.MustNewConstMetric(defragRateDesc, prometheus.GaugeValue, float64(rate))
}

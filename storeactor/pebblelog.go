package storeactor

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
)

// pebble's own voice in the member's log: its messages (pebbleLogger) and
// the events an operator must hear of (eventListener) go to zap, and write
// stalls are counted (metastore_pebble_write_stalls_total and
// metastore_pebble_write_stall_duration_seconds_total, in metrics.go).

// pebbleLogger routes pebble's Logger into zap: its chatter (Infof) at
// debug, errors at error. Fatalf logs at error, tells onFatal (see
// WithOnFatal) and panics, as the quiet logger did: pebble calls it for
// failures it cannot go on from.
type pebbleLogger struct {
	l       *zap.SugaredLogger
	onFatal func(error)
}

func (p pebbleLogger) Infof(format string, args ...any)  { p.l.Debugf(format, args...) }
func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Errorf(format, args...) }
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := "pebble: fatal: " + fmt.Sprintf(format, args...)
	p.l.Error(msg)
	if p.onFatal != nil {
		p.onFatal(errors.New(msg))
	}
	panic(msg)
}

// eventListener logs pebble's background errors (error), disk operations
// still running after 5 s (warn; pebble's disk health checks, which
// OpenPebbleFS turns on, report them) and write stalls (warn when one begins, info when it
// ends, with how long writes were held), and counts the stalls.
func eventListener(lg *zap.Logger) pebble.EventListener {
	var stallStart atomic.Int64 // unix ns the current stall began; 0: none
	return pebble.EventListener{
		BackgroundError: func(err error) {
			lg.Error("pebble background error", zap.Error(err))
		},
		DiskSlow: func(info pebble.DiskSlowInfo) {
			lg.Warn("pebble: slow disk operation", zap.String("path", info.Path),
				zap.String("op", info.OpType.String()), zap.Int("write-size", info.WriteSize),
				zap.Duration("ongoing-for", info.Duration))
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			stallStart.Store(time.Now().UnixNano())
			writeStalls.Inc()
			lg.Warn("pebble write stall began: writes are held", zap.String("reason", info.Reason))
		},
		WriteStallEnd: func() {
			start := stallStart.Swap(0)
			if start == 0 {
				return
			}
			d := time.Since(time.Unix(0, start))
			writeStallSeconds.Add(d.Seconds())
			lg.Info("pebble write stall ended", zap.Duration("took", d))
		},
	}
}

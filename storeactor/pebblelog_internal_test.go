package storeactor

import (
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	zapobserver "go.uber.org/zap/zaptest/observer"
)

// pebble's events reach the log at their level, and write stalls are
// counted with their duration.
func TestPebbleEventsAreLoggedAndCounted(t *testing.T) {
	core, logs := zapobserver.New(zapcore.DebugLevel)
	l := eventListener(zap.New(core))
	stalls, stalled := testutil.ToFloat64(writeStalls), testutil.ToFloat64(writeStallSeconds)

	l.WriteStallBegin(pebble.WriteStallBeginInfo{Reason: "memtable count limit reached"})
	time.Sleep(5 * time.Millisecond)
	l.WriteStallEnd()
	l.BackgroundError(errors.New("boom"))
	l.DiskSlow(pebble.DiskSlowInfo{Path: "000001.log", OpType: vfs.OpTypeSync, Duration: 6 * time.Second})

	if d := testutil.ToFloat64(writeStalls) - stalls; d != 1 {
		t.Errorf("write stalls counted: %v", d)
	}
	if d := testutil.ToFloat64(writeStallSeconds) - stalled; d < 0.005 {
		t.Errorf("write stall seconds: %v", d)
	}
	want := map[string]zapcore.Level{
		"pebble write stall began: writes are held": zapcore.WarnLevel,
		"pebble write stall ended":                  zapcore.InfoLevel,
		"pebble background error":                   zapcore.ErrorLevel,
		"pebble: slow disk operation":               zapcore.WarnLevel,
	}
	for _, e := range logs.All() {
		if lvl, ok := want[e.Message]; ok && lvl == e.Level {
			delete(want, e.Message)
		}
	}
	if len(want) > 0 {
		t.Errorf("not logged (message: level): %v; logged: %v", want, logs.All())
	}
}

// pebble's own messages go to zap: its chatter at debug, errors at error;
// a fatal one is told to WithOnFatal's function before pebble panics.
func TestPebbleLoggerRoutesToZap(t *testing.T) {
	core, logs := zapobserver.New(zapcore.DebugLevel)
	var fatal error
	lg := pebbleLogger{l: zap.New(core).Sugar(), onFatal: func(err error) { fatal = err }}
	lg.Infof("flushed %d memtables", 1)
	lg.Errorf("background %s", "trouble")
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Fatalf returned")
			}
		}()
		lg.Fatalf("corrupt %s", "table")
	}()
	got := logs.All()
	if len(got) != 3 || got[0].Level != zapcore.DebugLevel || got[0].Message != "flushed 1 memtables" ||
		got[1].Level != zapcore.ErrorLevel || got[2].Level != zapcore.ErrorLevel {
		t.Errorf("logged %v", got)
	}
	if fatal == nil || fatal.Error() != "pebble: fatal: corrupt table" {
		t.Errorf("onFatal got %v", fatal)
	}
}

package storeactor

import (
	"time"

	"go.uber.org/zap"

	"github.com/metastore/metastore/actors"
)

// SetLogger makes the Reader log its read errors (see readError) to lg, at
// Error, at most one line a second as clock tells time (nil: the wall
// clock): a failing disk fails every request that reads it. Each line
// names the read and counts the errors left unlogged since the previous
// line; every error is counted in metastore_store_read_errors_total.
// Until SetLogger is called they are only counted; the node calls it when
// it wires the Reader.
func (r *Reader) SetLogger(lg *zap.Logger, clock actors.Clock) {
	r.errLog.Store(&readErrorLog{lg: lg, limit: actors.NewLogLimiter(clock, time.Second)})
}

type readErrorLog struct {
	lg    *zap.Logger
	limit *actors.LogLimiter
}

func (l *readErrorLog) log(op string, err error) {
	if ok, held := l.limit.Allow(); ok {
		l.lg.Error("failed to read the store", zap.String("read", op), zap.Error(err), zap.Int64("unlogged-since-last", held))
	}
}

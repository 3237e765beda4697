package testkit

import (
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TableReadFaults injects a read error into every read of a pebble table
// (an .sst file) while the returned toggle is on: wrap a DB's FS with
// errorfs.Wrap(fs, toggle) and data flushed to tables becomes unreadable,
// while the WAL and the memtable still work.
func TableReadFaults() *errorfs.Toggle {
	return &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if (op.Kind == errorfs.OpFileRead || op.Kind == errorfs.OpFileReadAt) && strings.HasSuffix(op.Path, ".sst") {
			return errorfs.ErrInjected
		}
		return nil
	})}
}

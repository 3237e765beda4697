package storeactor

import (
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"
)

// BumpRevision writes into w, for a store no Store actor runs on, the
// state `etcdutl snapshot restore --bump-revision n --mark-compacted`
// gives etcd's: the current revision raised by n, and that new revision
// as the compaction point. It returns v so changed.
//
// Why: a member restored from a snapshot goes back to the snapshot's
// revision, and would hand out again revisions clients have already seen
// with other contents. Past the bump, every new revision is above any
// seen before the restore, and every read or watch below the new
// revision (a client cache's or watch's resume point) is answered
// ErrCompacted, so clients re-list instead of trusting stale data.
//
// Only the 'm' entries change: the current revision is metaRev (etcd
// derives its own from the newest entry of its key bucket, hence its
// empty entry at the new revision), and no key changed at the skipped
// revisions, so no version, newest-version or history entry belongs to
// them and keys.go's invariants hold as they are. The Store finds its
// physical compaction behind (CompactDone < CompactRev) when it starts
// and runs it, as etcd compacts to its scheduled revision at start.
func BumpRevision(w pebble.Writer, v View, n int64) (View, error) {
	if n <= 0 || v.Rev > math.MaxInt64-n {
		return v, fmt.Errorf("storeactor: cannot bump revision %d by %d", v.Rev, n)
	}
	v.Rev += n
	v.CompactRev = v.Rev
	if err := putU64(w, metaRev, uint64(v.Rev)); err != nil {
		return v, err
	}
	return v, putU64(w, metaCompact, uint64(v.CompactRev))
}

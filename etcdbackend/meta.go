package etcdbackend

// Meta is what the backend records besides keys, leases and auth records.
type Meta struct {
	ConsistentIndex uint64 // the last raft entry applied to the backend
	Term            uint64 // that entry's term (0: not recorded, before 3.5)
	// ScheduledCompact is the revision of the last compaction requested:
	// reads below it fail once etcd has started. -1: never compacted.
	ScheduledCompact int64
	// FinishedCompact is the revision physical compaction last finished
	// at; older versions than the newest of each key below it are gone. -1:
	// none finished. Below ScheduledCompact when a compaction was cut short,
	// which etcd resumes when it starts.
	FinishedCompact int64
	StorageVersion  string // "3.7.0"; empty before 3.6
	AuthEnabled     bool
	AuthRevision    uint64 // 0: not recorded (etcd then starts it at 1)
}

// CompactRevision is the compaction point clients see once etcd has
// started on the backend (it resumes a scheduled compaction), -1 if none.
func (m Meta) CompactRevision() int64 { return max(m.ScheduledCompact, m.FinishedCompact) }

// CurrentRevision is the store's revision as etcd computes it when it
// loads the backend: the newest revision in the key bucket (lastMain, 0 if
// empty), but never below a compaction point (compaction may have removed
// the newest revisions, tombstones), and 1 in an empty store.
func (m Meta) CurrentRevision(lastMain int64) int64 {
	return max(1, lastMain, m.ScheduledCompact, m.FinishedCompact)
}

// StorageVersion is the storage schema version this package writes, as
// etcd v3.7 records it (major.minor.0).
const StorageVersion = "3.7.0"

var (
	bucketKey            = []byte("key")
	bucketMeta           = []byte("meta")
	bucketLease          = []byte("lease")
	bucketAlarm          = []byte("alarm")
	bucketCluster        = []byte("cluster")
	bucketMembers        = []byte("members")
	bucketMembersRemoved = []byte("members_removed")
	bucketAuth           = []byte("auth")
	bucketAuthUsers      = []byte("authUsers")
	bucketAuthRoles      = []byte("authRoles")

	// allBuckets is every bucket etcd v3.7 creates (schema.AllBuckets).
	allBuckets = [][]byte{bucketKey, bucketMeta, bucketLease, bucketAlarm, bucketCluster,
		bucketMembers, bucketMembersRemoved, bucketAuth, bucketAuthUsers, bucketAuthRoles}

	metaConsistentIndex  = []byte("consistent_index")
	metaTerm             = []byte("term")
	metaScheduledCompact = []byte("scheduledCompactRev")
	metaFinishedCompact  = []byte("finishedCompactRev")
	metaStorageVersion   = []byte("storageVersion")
	authEnabledKey       = []byte("authEnabled")
	authRevisionKey      = []byte("authRevision")
	clusterVersionKey    = []byte("clusterVersion")
)

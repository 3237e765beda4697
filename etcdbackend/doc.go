// Package etcdbackend reads and writes etcd v3.7's storage backend: the
// bbolt file at <data-dir>/member/snap/db, which is also what
// `etcdctl snapshot save` writes (followed there by a SHA-256 of the file).
// It is how `metastoreutl migrate from-etcd` takes etcd's data in and
// `metastoreutl snapshot export --to-etcd` gives it back.
//
// The layout, as etcd's server/storage/schema and storage/mvcc define it:
//
//	key              main(8) '_' sub(8) ['t']  -> mvccpb.KeyValue
//	                 every version of every key still in the backend, in
//	                 revision order; 't' marks a tombstone (a delete), whose
//	                 KeyValue holds only the key. Revision numbers are
//	                 big-endian, so bbolt's order is revision order.
//	meta             consistent_index, term -> 8 bytes big-endian (raft)
//	                 scheduledCompactRev, finishedCompactRev -> a revision
//	                 key (main '_' 0): the compaction clients see, and how
//	                 far it has physically gone
//	                 confState -> JSON; storageVersion -> "3.7.0"
//	lease            id(8) -> leasepb.Lease (ID, granted TTL, RemainingTTL
//	                 only with lease checkpoints persisted)
//	auth             authEnabled -> 1 byte; authRevision -> 8 bytes
//	authUsers        name -> authpb.User (password: a bcrypt hash)
//	authRoles        name -> authpb.Role
//	members          hex id -> JSON member; members_removed: hex id -> "removed"
//	cluster          clusterVersion -> "3.7.0"
//	alarm            AlarmMember -> empty
//
// Everything streams: versions are read with a bbolt cursor and written in
// bounded transactions, so memory does not grow with the size of the file.
package etcdbackend

// Package watchcheck records what etcd v3 watchers receive and checks it
// against etcd's documented watch guarantees
// (https://etcd.io/docs/latest/learning/api_guarantees/#watch-apis):
//
//   - ordered: events come in revision order; a revision never comes back
//     in a later response;
//   - unique: no event is delivered twice;
//   - reliable: no gap: a watcher gets exactly the events of the history
//     that match its key range and filters, for every revision from its
//     start to the last revision it has seen (its last event or progress
//     notification);
//   - atomic: a revision's events for a watcher come in one response (or in
//     consecutive pieces of one fragmented response);
//   - resumable: a watcher re-created from the revision after the last it
//     saw gets exactly the rest of the history;
//   - bookmarkable: after a progress notification at revision R no event at
//     or below R arrives;
//
// plus that every event's fields (kv, prev_kv) equal the history's, and that
// a compacted watcher is canceled with nothing at or after the compaction.
//
// The truth is a History: per revision, the exact events. It is usually
// read with a watch over all keys from the first revision of the workload
// (CollectTruth), and cross-checked against the acknowledged writes
// (CheckWrites) and against itself (Consistent: versions, create revisions
// and prev_kv chain up). A Recording holds what one logical watcher received:
// one Segment per incarnation (a watcher canceled and re-created from its
// last revision + 1 is one Recording with two segments). Check compares a
// Recording with the History.
//
// Watchers are driven either through clientv3 (ClientWatch) or on raw gRPC
// watch streams (RawStream), which let a test control when, and whether,
// the stream is read.
package watchcheck

// Package watchactor is MetaStore's etcd Watch service: one Hub actor owns
// every watcher of the node and fans the store's changes out to the gRPC
// watch streams.
//
// Two ways in, one way out:
//
//   - Live: after each apply batch the store sends the Hub a
//     storeactor.Committed with that batch's events. The Hub matches each
//     revision's events against the synced watchers (an index by key, and by
//     distinct range) and queues one response per watcher and revision.
//   - Catch-up: a watcher that starts in the past, or fell behind because its
//     stream could not take more, is unsynced. The Hub reads history from
//     pebble (storeactor.Reader.History) in bounded steps it sends itself,
//     so live batches and requests interleave with a long catch-up; once a
//     watcher has read up to the Hub's revision it joins the synced index.
//   - Out: every response goes into its stream's Stream, a queue the gRPC
//     handler drains. Event responses count against the Stream's byte
//     budget; a push that would exceed it is refused, and the watcher goes
//     back to unsynced at the first revision it did not get. When the
//     handler has drained the queue it tells the Hub (Drained), and the
//     stream's watchers catch up from pebble. A client that stops reading
//     therefore costs at most the budget (plus the batch in flight), never
//     an ever-growing queue.
//
// Invariants (per watcher): nextRev is the first revision not yet queued
// for it; events are queued in revision order, each revision's events in one
// response, and a revision is queued at most once. A watcher is in at most
// one of the synced index or the unsynced set (in neither once a compaction
// overtook it: like etcd, it keeps its id until the client cancels it); synced watchers have seen
// everything up to the Hub's revision (hub.rev), which only advances as
// Committed batches are handled, after their events are queued.
//
// Restart: the Hub's state is rebuilt empty. Streams open at the time of a
// panic are failed with codes.Unavailable, so clients re-open them and
// clientv3 resumes every watcher from the revision after the last event it
// received: nothing is skipped or stalled.
package watchactor

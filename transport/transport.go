// Package transport carries raft messages between cluster members over HTTP,
// on the peer listener (--listen-peer-urls).
//
// # Wire
//
// Streams. Each member dials each peer once and keeps the connection:
//
//	POST <peerURL>/raft/stream
//	X-Metastore-Cluster-ID: <hex>   X-Metastore-From: <hex>   X-Metastore-To: <hex>
//	Transfer-Encoding: chunked
//
//	body: frame frame frame ...      frame = uvarint(len) ‖ proto(raftpb.Message)
//
// The receiver checks the headers (cluster id: 412; addressee: 412; removed
// sender: 410 Gone, as etcd does), answers 200 at once and then reads frames
// from the request body until it ends, handing each message to
// Config.Deliver. The response carries nothing after its headers; it ends
// when the receiver drops the stream, which is how the sender learns of it.
// Messages only flow from dialer to listener, so a pair of members holds two
// streams, one per direction, and every member's messages to a peer leave in
// the order raft emitted them.
//
// Why a request body and not etcd's response stream: the sender owns the
// connection it writes on, so connection state, backoff and queue are one
// goroutine's business (peer.go), and the receiver is a plain handler.
//
// Snapshots. A MsgSnap, when Config.OpenSnapshot is set, does not go on the
// stream (it would hold every later heartbeat behind megabytes of data):
//
//	POST <peerURL>/raft/snapshot     (same headers)
//	body: frame(MsgSnap) ‖ state-machine data to EOF
//
// The receiver hands the data to Config.ReceiveSnapshot, then Delivers the
// MsgSnap, then answers 204; the sender reports the outcome to raft through
// Config.SnapshotStatus. See snapshot.go.
//
// Probe. GET <peerURL>/raft/probe answers 200 with the member and cluster id
// in headers; for health checks.
//
// # Threads
//
// Send runs on the raft actor's goroutine and never blocks: it looks the peer
// up in a copy-on-write map published through an atomic pointer and does a
// non-blocking channel send into that peer's bounded queue. Each peer has a
// writer goroutine (connect, backoff, drain the queue into the stream) and a
// snapshot goroutine (one transfer at a time). Peer set changes (AddPeer,
// UpdatePeer, RemovePeer, Stop) are rare and serialize on a mutex.
//
// Losing messages is fine — raft retransmits — but raft must hear about it:
// Unreachable is reported once per failed connection attempt or broken
// stream, and once per overflow episode of a queue (not per dropped
// message); a dropped MsgSnap is reported as a failed snapshot.
package transport

import (
	"crypto/tls"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
)

// Config configures a Transport. Callbacks may run on the transport's
// goroutines, on HTTP handler goroutines, and (Unreachable, SnapshotStatus
// for a dropped message) on the goroutine calling Send; none may block long.
type Config struct {
	ID        uint64 // this member
	ClusterID uint64
	// Deliver is called for every message received from a peer, from the
	// HTTP handler's goroutine. Must not block long (the node wires it to an
	// actor Send).
	Deliver func(m *raftpb.Message)
	// Unreachable is called when a message to peer id could not be sent /
	// the connection to it failed, so raft can be told
	// (RawNode.ReportUnreachable). May be nil.
	Unreachable func(id uint64)
	// SnapshotStatus reports the outcome of sending a MsgSnap to id
	// (failure=true if it failed) — for RawNode.ReportSnapshot. May be nil.
	SnapshotStatus func(id uint64, failure bool)
	// OpenSnapshot returns the state-machine data to stream after a
	// MsgSnap's header (the message itself carries only raft metadata; its
	// Snapshot.Data is empty). Nil: MsgSnap are sent as plain messages on
	// the stream.
	OpenSnapshot func(m *raftpb.Message) (io.ReadCloser, error)
	// ReceiveSnapshot consumes a received snapshot's data stream (e.g. saves
	// it to disk) before the MsgSnap is delivered; an error fails the
	// transfer (the sender reports failure). Nil: refuse snapshots with data.
	ReceiveSnapshot func(m *raftpb.Message, data io.Reader) error
	// IsRemoved says whether a member id was removed from the cluster: its
	// messages are refused (HTTP 410 Gone). May be nil.
	IsRemoved func(id uint64) bool
	// Removed is called when a peer answers 410 Gone: this member was
	// removed from the cluster (etcd stops the member then). May be nil.
	Removed func(by uint64)
	// Cut is fault injection for tests: while it reports true for a peer,
	// raft messages to and from it are dropped, as a network partition
	// would (connections stay up). Nil in production.
	Cut func(peer uint64) bool
	// TLS is the client TLS config for dialing https peers; nil = plain
	// http (https URLs then fail with a clear error).
	TLS    *tls.Config
	Logger *zap.Logger
}

// Transport sends raft messages to peers and receives theirs. Create with
// New, serve Handler on the peer listener, add peers, Send.
type Transport struct {
	cfg Config
	log *zap.Logger

	// peers is the routing table Send reads without locks. Invariant: only
	// replaced (never mutated) and only with mu held.
	peers atomic.Pointer[map[uint64]*peer]
	mu    sync.Mutex
	// stopped is set once, by Stop, with mu and inMu held.
	stopped atomic.Bool

	// Inbound requests (streams and snapshots being received), so Stop can
	// cut them and wait until no Deliver can happen anymore.
	inMu    sync.Mutex
	inbound map[*inbound]struct{}
	inWG    sync.WaitGroup

	removedOnce sync.Once
}

// New returns a Transport with no peers.
func New(cfg Config) *Transport {
	t := &Transport{cfg: cfg, log: cfg.Logger, inbound: make(map[*inbound]struct{})}
	if t.log == nil {
		t.log = zap.NewNop()
	}
	t.log = t.log.With(zap.String("local-member-id", idString(cfg.ID)))
	empty := map[uint64]*peer{}
	t.peers.Store(&empty)
	return t
}

// Send routes each message to its peer's queue. It never blocks: a message
// to an unknown peer is dropped, and so is one that finds its peer's queue
// full (Unreachable is reported). MsgSnap go to the snapshot sender when
// Config.OpenSnapshot is set.
func (t *Transport) Send(msgs []*raftpb.Message) {
	peers := *t.peers.Load()
	for _, m := range msgs {
		if m == nil {
			continue
		}
		p := peers[m.GetTo()]
		if t.cut(m.GetTo()) {
			continue
		}
		if p == nil {
			if ce := t.log.Check(zap.DebugLevel, "dropped message to unknown peer"); ce != nil {
				ce.Write(zap.String("remote-peer-id", idString(m.GetTo())), zap.Stringer("type", m.GetType()))
			}
			continue
		}
		p.send(m)
	}
}

// AddPeer starts sending to member id at urls. Adding a known peer updates
// its URLs; adding this member itself is ignored.
func (t *Transport) AddPeer(id uint64, urls []string) {
	if id == t.cfg.ID {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped.Load() {
		return
	}
	old := *t.peers.Load()
	if p := old[id]; p != nil {
		p.setURLs(urls)
		return
	}
	next := make(map[uint64]*peer, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	p := newPeer(t, id, urls)
	next[id] = p
	t.peers.Store(&next)
	p.start()
	t.log.Info("added remote peer", zap.String("remote-peer-id", idString(id)), zap.Strings("remote-peer-urls", urls))
}

// UpdatePeer changes the URLs of a known peer; its stream reconnects if they
// changed.
func (t *Transport) UpdatePeer(id uint64, urls []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := (*t.peers.Load())[id]; p != nil {
		p.setURLs(urls)
		t.log.Info("updated remote peer", zap.String("remote-peer-id", idString(id)), zap.Strings("remote-peer-urls", urls))
	}
}

// RemovePeer stops sending to id and closes the connections to it. Messages
// still queued are dropped; a snapshot in flight fails.
func (t *Transport) RemovePeer(id uint64) {
	t.mu.Lock()
	old := *t.peers.Load()
	p := old[id]
	if p == nil {
		t.mu.Unlock()
		return
	}
	next := make(map[uint64]*peer, len(old))
	for k, v := range old {
		if k != id {
			next[k] = v
		}
	}
	t.peers.Store(&next)
	t.mu.Unlock()
	// Send may still hold the old map and queue into p: harmless, the queue
	// is never closed, only no longer drained.
	p.stop()
	// Cut what it is sending us too: a removed member that reconnects is
	// told it was removed (410) and stops, instead of talking to raft on
	// a stream opened while it was a member.
	t.inMu.Lock()
	for in := range t.inbound {
		if in.from == id {
			in.cut()
			delete(t.inbound, in)
		}
	}
	t.inMu.Unlock()
	t.log.Info("removed remote peer", zap.String("remote-peer-id", idString(id)))
}

// ActiveSince returns when the current stream to id was accepted by the
// peer, or the zero time when there is none.
func (t *Transport) ActiveSince(id uint64) time.Time {
	p := (*t.peers.Load())[id]
	if p == nil {
		return time.Time{}
	}
	ns := p.active.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// ActivePeers counts the peers with a live stream (etcd's
// Transport.ActivePeers).
func (t *Transport) ActivePeers() int {
	n := 0
	for _, p := range *t.peers.Load() {
		if p.active.Load() != 0 {
			n++
		}
	}
	return n
}

// Stop stops every sender, closes outgoing and incoming connections and
// waits for the handlers it cut: once it returns, Deliver is not called
// again and the handler answers 503.
func (t *Transport) Stop() {
	t.mu.Lock()
	t.inMu.Lock()
	if t.stopped.Swap(true) {
		t.inMu.Unlock()
		t.mu.Unlock()
		return
	}
	for in := range t.inbound {
		in.cut()
	}
	t.inMu.Unlock()
	old := *t.peers.Load()
	empty := map[uint64]*peer{}
	t.peers.Store(&empty)
	t.mu.Unlock()

	for _, p := range old {
		p.cancel(errStopped)
	}
	for _, p := range old {
		p.stop()
	}
	t.inWG.Wait()
}

func (t *Transport) cut(peer uint64) bool { return t.cfg.Cut != nil && t.cfg.Cut(peer) }

func (t *Transport) unreachable(id uint64) {
	if t.cfg.Unreachable != nil {
		t.cfg.Unreachable(id)
	}
}

func (t *Transport) snapshotStatus(id uint64, failure bool) {
	if t.cfg.SnapshotStatus != nil {
		t.cfg.SnapshotStatus(id, failure)
	}
}

func (t *Transport) deliver(m *raftpb.Message) {
	if t.cut(m.GetFrom()) {
		return
	}
	if t.cfg.Deliver != nil {
		t.cfg.Deliver(m)
	}
}

func (t *Transport) removed(by uint64) {
	t.removedOnce.Do(func() {
		t.log.Error("the member has been permanently removed from the cluster", zap.String("reported-by", idString(by)))
	})
	if t.cfg.Removed != nil {
		t.cfg.Removed(by)
	}
}

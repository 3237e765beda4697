package watchactor

import pb "go.etcd.io/etcd/api/v3/etcdserverpb"

// The Hub's requests, sent by the gateway's watch handler. Each names the
// Stream it is for; the Hub answers by pushing into it. Messages for a
// Stream the Hub does not know (closed, or failed by a restart) are
// ignored. The client's requests (Create, Cancel, RequestProgress) are
// sent after the Stream's Admit, and the Hub calls Handled for each.

// OpenStream registers a stream; it must precede the stream's other
// messages.
type OpenStream struct{ Out *Stream }

// CloseStream drops the stream and all its watchers.
type CloseStream struct{ Out *Stream }

// Create is a WatchCreateRequest. The Hub answers with a created response
// (canceled too, with etcd's reason, when the request is invalid).
type Create struct {
	Out *Stream
	Req *pb.WatchCreateRequest
	// Refused, when set, is why the gateway refused the watch (auth): the
	// Hub answers with etcd's created-and-canceled response, in order with
	// the stream's other responses, and creates nothing.
	Refused string
}

// Cancel is a WatchCancelRequest; an unknown id gets no answer, as in etcd.
type Cancel struct {
	Out     *Stream
	WatchID int64
}

// RequestProgress is a WatchProgressRequest: when every watcher of the
// stream is synced the Hub answers with a progress notification for the
// whole stream (watch id -1) at its current revision; otherwise not at all.
type RequestProgress struct{ Out *Stream }

// Drained tells the Hub that a stream that refused pushes has been emptied:
// its watchers may catch up.
type Drained struct{ Out *Stream }

// Internal messages the Hub sends itself.
type (
	syncStep     struct{} // run one bounded catch-up step
	progressTick struct{} // --watch-progress-notify-interval elapsed
)

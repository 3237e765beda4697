package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
)

// The watch feed: a gRPC Watch on a prefix, opened for the browser's user
// and relayed as Server-Sent Events. Each event's SSE id is its revision,
// so a browser that reconnects (or resumes after a pause: the UI closes
// the feed and reopens it from the last revision it showed + 1) continues
// where it left off, as long as that revision is not compacted.

// maxEventValue bounds the value bytes an event carries to the feed (the
// key page shows a whole value).
const maxEventValue = 4 << 10

// keepAliveEvery is how often an idle feed sends an SSE comment, so that
// proxies and browsers keep the connection.
const keepAliveEvery = 15 * time.Second

type watchEvent struct {
	Type      string  `json:"type"` // PUT or DELETE
	KV        *kvJSON `json:"kv"`
	PrevKV    *kvJSON `json:"prevKv,omitempty"`
	Truncated bool    `json:"truncated,omitempty"` // values cut to maxEventValue
}

// serveWatch streams the events of every key under prefix from revision
// rev (0: from now; Last-Event-ID: from the one after it).
func (c *Console) serveWatch(w http.ResponseWriter, r *http.Request, s *session) reply {
	q := r.URL.Query()
	prefix, err1 := param64(q.Get("prefix"))
	rev, err2 := paramInt(q.Get("rev"))
	if err := firstErr(err1, err2); err != nil {
		return badRequest(err.Error())
	}
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		if last, err := strconv.ParseInt(id, 10, 64); err == nil {
			rev = last + 1
		}
	}
	flusher, canFlush := w.(http.Flusher)
	if !canFlush {
		return errorReply(http.StatusInternalServerError, "streaming is not supported on this connection")
	}
	ctx, cancel := asUser(r, s, 0) // as long as the browser listens
	defer cancel()
	stream, err := pb.NewWatchClient(c.cfg.Conn).Watch(ctx)
	if err != nil {
		return c.fail(s, err)
	}
	key, end := prefix, prefixEnd(prefix)
	if len(key) == 0 {
		key = []byte{0}
	}
	if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: key, RangeEnd: end, StartRevision: rev, PrevKv: true}}}); err != nil {
		return c.fail(s, err)
	}
	first, err := stream.Recv()
	if err != nil {
		return c.fail(s, err)
	}
	if first.Canceled {
		// Refused at create: permission denied, compacted, a future revision.
		code := http.StatusBadRequest
		if strings.Contains(first.CancelReason, rpctypes.ErrorDesc(rpctypes.ErrGRPCPermissionDenied)) {
			code = http.StatusForbidden
		}
		return errorReply(code, first.CancelReason)
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "event: created\ndata: {\"revision\":%d}\n\n", first.Header.GetRevision())
	flusher.Flush()
	c.lg.Debug("console watch opened", zap.String("user", s.user), zap.ByteString("prefix", prefix), zap.Int64("start-revision", rev))

	responses := make(chan *pb.WatchResponse)
	failed := make(chan error, 1)
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				failed <- err
				return
			}
			select {
			case responses <- resp:
			case <-ctx.Done():
				return
			}
		}
	}()
	keepAlive := time.NewTicker(keepAliveEvery)
	defer keepAlive.Stop()
	for {
		select {
		case <-ctx.Done():
			return reply{written: true}
		case err := <-failed:
			writeSSE(w, "failed", apiError{Error: rpcReply(err).body.(apiError).Error}, 0)
			flusher.Flush()
			return reply{written: true}
		case <-keepAlive.C:
			fmt.Fprint(w, ": keep-alive\n\n")
			flusher.Flush()
		case resp := <-responses:
			if resp.Canceled {
				writeSSE(w, "failed", apiError{Error: resp.CancelReason}, 0)
				flusher.Flush()
				return reply{written: true}
			}
			for i, ev := range resp.Events {
				out := watchEvent{Type: ev.Type.String(), KV: toKV(ev.Kv), PrevKV: toKV(ev.PrevKv)}
				out.Truncated = truncate(out.KV) || truncate(out.PrevKV)
				id := int64(0)
				if i == len(resp.Events)-1 {
					id = ev.Kv.ModRevision // a resumed feed starts after the whole response
				}
				writeSSE(w, "", out, id)
			}
			flusher.Flush()
		}
	}
}

// truncate cuts a value to maxEventValue, reporting whether it did.
func truncate(kv *kvJSON) bool {
	if kv == nil || len(kv.Value) <= maxEventValue {
		return false
	}
	kv.Value = kv.Value[:maxEventValue]
	return true
}

// writeSSE writes one event: its type (""; the default "message"), its
// id (0: none) and its JSON data on one line.
func writeSSE(w http.ResponseWriter, event string, v any, id int64) {
	b, _ := json.Marshal(v)
	if event != "" {
		fmt.Fprintf(w, "event: %s\n", event)
	}
	if id > 0 {
		fmt.Fprintf(w, "id: %d\n", id)
	}
	fmt.Fprintf(w, "data: %s\n\n", b)
}

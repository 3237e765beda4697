package watchcheck

import (
	"fmt"
	"strings"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Spec is what a watcher asked for.
type Spec struct {
	// Key and End are the watched range, as in WatchCreateRequest: End ""
	// watches Key alone, End "\x00" every key from Key on (Key "" or "\x00"
	// then means all keys), otherwise [Key, End).
	Key, End string
	// StartRev is the requested start revision; 0 means "after the current
	// revision", which the created response's header tells.
	StartRev int64

	PrevKV, NoPut, NoDelete, Fragment, ProgressNotify bool
}

// Matches reports whether key is in the watched range.
func (s Spec) Matches(key string) bool {
	switch {
	case s.End == "":
		return key == s.Key
	case s.End == "\x00":
		return key >= s.Key
	default:
		return key >= s.Key && key < s.End
	}
}

// Wants reports whether the watcher should get ev (range and filters).
func (s Spec) Wants(ev *mvccpb.Event) bool {
	if !s.Matches(string(ev.Kv.Key)) {
		return false
	}
	if ev.Type == mvccpb.Event_PUT {
		return !s.NoPut
	}
	return !s.NoDelete
}

func (s Spec) String() string {
	var b strings.Builder
	switch s.End {
	case "":
		fmt.Fprintf(&b, "key=%q", s.Key)
	case "\x00":
		fmt.Fprintf(&b, "from=%q", s.Key)
	default:
		fmt.Fprintf(&b, "range=[%q,%q)", s.Key, s.End)
	}
	fmt.Fprintf(&b, " start=%d", s.StartRev)
	for _, f := range []struct {
		on   bool
		name string
	}{{s.PrevKV, "prev_kv"}, {s.NoPut, "noput"}, {s.NoDelete, "nodelete"}, {s.Fragment, "fragment"}, {s.ProgressNotify, "progress_notify"}} {
		if f.on {
			b.WriteString(" " + f.name)
		}
	}
	return b.String()
}

// Response is one watch response as a watcher received it, from a raw gRPC
// stream (FromPB) or from clientv3 (FromClient, which hides watch ids and
// merges fragments).
type Response struct {
	WatchID         int64
	HeaderRev       int64
	Created         bool
	Canceled        bool
	Fragment        bool
	CompactRevision int64
	CancelReason    string
	Events          []*mvccpb.Event
}

// FromPB converts a raw gRPC watch response.
func FromPB(r *pb.WatchResponse) Response {
	return Response{
		WatchID: r.WatchId, HeaderRev: r.GetHeader().GetRevision(), Created: r.Created,
		Canceled: r.Canceled, Fragment: r.Fragment, CompactRevision: r.CompactRevision,
		CancelReason: r.CancelReason, Events: r.Events,
	}
}

// FromClient converts a clientv3 watch response.
func FromClient(r clientv3.WatchResponse) Response {
	return Response{
		WatchID: -2, HeaderRev: r.Header.Revision, Created: r.Created, Canceled: r.Canceled,
		CompactRevision: r.CompactRevision, Events: r.Events,
	}
}

// IsProgress reports whether r is a progress notification (etcd's
// IsProgressNotify): no events and nothing else to say but a revision.
func (r Response) IsProgress() bool {
	return len(r.Events) == 0 && !r.Created && !r.Canceled && !r.Fragment &&
		r.CompactRevision == 0 && r.HeaderRev != 0
}

func (r Response) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "{id=%d hdr=%d", r.WatchID, r.HeaderRev)
	if r.Created {
		b.WriteString(" created")
	}
	if r.Canceled {
		b.WriteString(" canceled")
	}
	if r.Fragment {
		b.WriteString(" fragment")
	}
	if r.CompactRevision != 0 {
		fmt.Fprintf(&b, " compact=%d", r.CompactRevision)
	}
	if r.CancelReason != "" {
		fmt.Fprintf(&b, " reason=%q", r.CancelReason)
	}
	if r.IsProgress() {
		b.WriteString(" progress")
	}
	if n := len(r.Events); n > 0 {
		fmt.Fprintf(&b, " %d events:", n)
		for i, ev := range r.Events {
			if i == 6 {
				fmt.Fprintf(&b, " ...%d more", n-i)
				break
			}
			b.WriteString(" " + fmtEvent(ev))
		}
	}
	b.WriteString("}")
	return b.String()
}

func fmtEvent(ev *mvccpb.Event) string {
	return fmt.Sprintf("%s@%d:%q", ev.Type, ev.Kv.ModRevision, ev.Kv.Key)
}

// Segment is one incarnation of a watcher: what it asked for and every
// response it got, in order.
type Segment struct {
	Spec  Spec
	Resps []Response
}

// Start returns the first revision the segment must deliver: Spec.StartRev,
// or for StartRev 0 the created response's header revision + 1. ok is false
// when that is not known (start 0 and no created response yet).
func (s *Segment) Start() (rev int64, ok bool) {
	if s.Spec.StartRev > 0 {
		return s.Spec.StartRev, true
	}
	for _, r := range s.Resps {
		if r.Created {
			return r.HeaderRev + 1, true
		}
	}
	return 0, false
}

// LastSeen is the last revision the segment has seen entirely: the highest
// of its start - 1, its last complete event response's last revision, and
// its last progress notification's revision.
func (s *Segment) LastSeen() int64 {
	start, ok := s.Start()
	if !ok {
		return 0
	}
	last := start - 1
	inFragment := false
	pending := int64(0)
	for _, r := range s.Resps {
		for _, ev := range r.Events {
			pending = max(pending, ev.Kv.ModRevision)
		}
		inFragment = r.Fragment
		if !inFragment {
			last = max(last, pending)
			pending = 0
		}
		if r.IsProgress() {
			last = max(last, r.HeaderRev)
		}
	}
	return last
}

// Ended reports whether the segment got a canceled response, and the
// compaction revision it carried (0 if none).
func (s *Segment) Ended() (canceled bool, compactRev int64) {
	for _, r := range s.Resps {
		if r.Canceled {
			return true, r.CompactRevision
		}
	}
	return false, 0
}

// Recording is everything one logical watcher received, across its
// incarnations. It is safe for concurrent use.
type Recording struct {
	Name string

	mu   sync.Mutex
	segs []*Segment
}

// NewRecording starts a recording whose first incarnation asks for spec.
func NewRecording(name string, spec Spec) *Recording {
	return &Recording{Name: name, segs: []*Segment{{Spec: spec}}}
}

// Add appends a response to the current incarnation.
func (r *Recording) Add(resp Response) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seg := r.segs[len(r.segs)-1]
	seg.Resps = append(seg.Resps, resp)
}

// Spec is the current incarnation's spec.
func (r *Recording) Spec() Spec {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.segs[len(r.segs)-1].Spec
}

// Resume starts a new incarnation, like the current one but from the
// revision after the last the current one saw, and returns its spec.
func (r *Recording) Resume() Spec {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.segs[len(r.segs)-1]
	spec := cur.Spec
	spec.StartRev = cur.LastSeen() + 1
	r.segs = append(r.segs, &Segment{Spec: spec})
	return spec
}

// LastSeen is the current incarnation's Segment.LastSeen.
func (r *Recording) LastSeen() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.segs[len(r.segs)-1].LastSeen()
}

// Ended is the current incarnation's Segment.Ended.
func (r *Recording) Ended() (canceled bool, compactRev int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.segs[len(r.segs)-1].Ended()
}

// Segments returns a copy of the incarnations so far.
func (r *Recording) Segments() []Segment {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Segment, len(r.segs))
	for i, s := range r.segs {
		out[i] = Segment{Spec: s.Spec, Resps: append([]Response(nil), s.Resps...)}
	}
	return out
}

// Stats summarizes a recording: responses, events, progress notifications,
// and responses that held more than one revision (catch-up responses).
type Stats struct {
	Segments, Responses, Events, Progress, MultiRev, Fragments int
}

// Stats counts what the recording holds.
func (r *Recording) Stats() Stats {
	var st Stats
	for _, seg := range r.Segments() {
		st.Segments++
		for _, resp := range seg.Resps {
			st.Responses++
			st.Events += len(resp.Events)
			if resp.IsProgress() {
				st.Progress++
			}
			if resp.Fragment {
				st.Fragments++
			}
			if n := len(resp.Events); n > 0 && resp.Events[0].Kv.ModRevision != resp.Events[n-1].Kv.ModRevision {
				st.MultiRev++
			}
		}
	}
	return st
}

package watchcheck

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// The guarantees and rules a Violation can name.
const (
	Ordered      = "ordered"
	Unique       = "unique"
	Reliable     = "reliable"
	Atomic       = "atomic"
	Resumable    = "resumable"
	Bookmarkable = "bookmarkable"
	Fields       = "fields"
	Compacted    = "compacted" // a compacted response is canceled and ends the watcher
	Protocol     = "protocol"  // created first, nothing after canceled
)

// Violation is one broken guarantee.
type Violation struct {
	Guarantee string
	Watcher   string // the Recording's name
	Segment   int    // incarnation, from 0
	Spec      Spec
	Rev       int64 // the revision involved, if any
	Detail    string
	// Resps are the responses involved, by index in the segment, and what
	// they were.
	Resps map[int]string
}

func (v Violation) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s broken: watcher %q incarnation %d (%s)", v.Guarantee, v.Watcher, v.Segment, v.Spec)
	if v.Rev != 0 {
		fmt.Fprintf(&b, " at revision %d", v.Rev)
	}
	fmt.Fprintf(&b, ": %s", v.Detail)
	for _, i := range slices.Sorted(maps.Keys(v.Resps)) {
		fmt.Fprintf(&b, "\n\tresponse #%d: %s", i, v.Resps[i])
	}
	return b.String()
}

// Violations is the error Check returns.
type Violations []Violation

func (vs Violations) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d watch guarantee violation(s):", len(vs))
	for i, v := range vs {
		if i == maxReported {
			fmt.Fprintf(&b, "\n... and %d more", len(vs)-i)
			break
		}
		b.WriteString("\n" + v.Error())
	}
	return b.String()
}

// Has reports whether some violation names guarantee g.
func (vs Violations) Has(g string) bool {
	for _, v := range vs {
		if v.Guarantee == g {
			return true
		}
	}
	return false
}

const maxReported = 20

// Check verifies a recording against the history; it returns nil or
// Violations. The history must cover every revision the recording's
// watchers saw, from their start revisions on.
func Check(h *History, rec *Recording) error {
	segs := rec.Segments()
	var vs Violations
	for i := range segs {
		vs = append(vs, checkSegment(h, rec.Name, i, segs)...)
	}
	if len(vs) == 0 {
		return nil
	}
	return vs
}

// CheckAll checks every recording and returns all violations.
func CheckAll(h *History, recs ...*Recording) error {
	var vs Violations
	for _, r := range recs {
		if err := Check(h, r); err != nil {
			vs = append(vs, err.(Violations)...)
		}
	}
	if len(vs) == 0 {
		return nil
	}
	return vs
}

type checker struct {
	name string
	idx  int
	seg  *Segment
	vs   Violations
}

func (c *checker) fail(g string, rev int64, resps []int, format string, args ...any) {
	v := Violation{Guarantee: g, Watcher: c.name, Segment: c.idx, Spec: c.seg.Spec, Rev: rev,
		Detail: fmt.Sprintf(format, args...), Resps: map[int]string{}}
	for _, i := range resps {
		if i >= 0 && i < len(c.seg.Resps) {
			v.Resps[i] = c.seg.Resps[i].String()
		}
	}
	c.vs = append(c.vs, v)
}

// received is one event as delivered: where it came from.
type received struct {
	ev      *mvccpb.Event
	resp    int // index of the response (piece) holding it
	logical int // index of the logical response: fragments of one response share it
}

func checkSegment(h *History, name string, idx int, segs []Segment) Violations {
	seg := &segs[idx]
	c := &checker{name: name, idx: idx, seg: seg}
	reliable := Reliable
	if idx > 0 {
		reliable = Resumable // a gap in a resumed incarnation is a failed resumption
	}
	start, known := seg.Start()

	// Resumption: each incarnation starts right after what the previous saw.
	if idx > 0 {
		prev := &segs[idx-1]
		if canceled, compact := prev.Ended(); !(canceled && compact != 0) {
			if want := prev.LastSeen() + 1; seg.Spec.StartRev != want {
				c.fail(Resumable, seg.Spec.StartRev, nil,
					"re-created from revision %d, but the previous incarnation had seen up to %d", seg.Spec.StartRev, want-1)
			}
		}
	}

	// One pass over the responses in arrival order.
	var (
		evs          []received
		logical      = 0
		inFragment   = false
		fragStart    = 0
		canceledAt   = -1
		compactRev   = int64(0)
		maxProgress  = int64(0)
		progressResp = -1
		lastRev      = int64(0)
		lastResp     = -1
		seen         = map[string]int{} // "rev/key" -> response index
		revLogical   = map[int64]int{}  // revision -> logical response holding it
		revResp      = map[int64]int{}
	)
	for i, r := range seg.Resps {
		if canceledAt >= 0 {
			c.fail(Protocol, 0, []int{canceledAt, i}, "a response after the watcher was canceled")
		}
		if r.Created && i > 0 {
			c.fail(Protocol, 0, []int{i}, "created response that is not the first")
		}
		if r.CompactRevision != 0 {
			compactRev = r.CompactRevision
			if !r.Canceled {
				c.fail(Compacted, r.CompactRevision, []int{i}, "compacted response that does not cancel the watcher")
			}
		}
		if r.Canceled {
			canceledAt = i
		}
		if !inFragment {
			fragStart = i
		}
		for _, ev := range r.Events {
			rev := ev.Kv.ModRevision
			if rev <= maxProgress {
				c.fail(Bookmarkable, rev, []int{progressResp, i},
					"event %s after a progress notification at revision %d", fmtEvent(ev), maxProgress)
			}
			if rev < lastRev {
				c.fail(Ordered, rev, []int{lastResp, i}, "event %s after an event of revision %d", fmtEvent(ev), lastRev)
			}
			if l, ok := revLogical[rev]; ok && l != logical {
				c.fail(Atomic, rev, []int{revResp[rev], i},
					"revision %d's events are split across responses (event %s)", rev, fmtEvent(ev))
			} else if !ok {
				revLogical[rev], revResp[rev] = logical, i
			}
			k := fmt.Sprintf("%d/%s", rev, ev.Kv.Key)
			if j, dup := seen[k]; dup {
				c.fail(Unique, rev, []int{j, i}, "event %s delivered twice", fmtEvent(ev))
			}
			seen[k] = i
			evs = append(evs, received{ev: ev, resp: i, logical: logical})
			lastRev, lastResp = max(lastRev, rev), i
		}
		if r.IsProgress() && r.HeaderRev >= maxProgress {
			maxProgress, progressResp = r.HeaderRev, i
		}
		inFragment = r.Fragment
		if !inFragment {
			logical++
		}
	}
	if inFragment { // an unfinished fragmented response: its events are not complete yet
		n := 0
		for n < len(evs) && evs[n].resp < fragStart {
			n++
		}
		evs = evs[:n]
	}
	if compactRev != 0 {
		for _, e := range evs {
			if e.ev.Kv.ModRevision >= compactRev {
				c.fail(Compacted, e.ev.Kv.ModRevision, []int{e.resp, canceledAt},
					"event %s although the watcher was then compacted at %d", fmtEvent(e.ev), compactRev)
			}
		}
	}
	if !known {
		if len(evs) > 0 {
			c.fail(Protocol, 0, []int{evs[0].resp}, "events for a watcher from revision 0 that got no created response")
		}
		return c.vs
	}

	// Reliability and fields: revision by revision, exactly the history.
	last := seg.LastSeen()
	byRev := map[int64][]received{}
	for _, e := range evs {
		rev := e.ev.Kv.ModRevision
		if rev < start {
			c.fail(reliable, rev, []int{e.resp}, "event %s before the watcher's start revision %d", fmtEvent(e.ev), start)
			continue
		}
		if rev < h.From || rev > h.To {
			c.fail(reliable, rev, []int{e.resp}, "event %s outside the history [%d,%d]", fmtEvent(e.ev), h.From, h.To)
			continue
		}
		byRev[rev] = append(byRev[rev], e)
	}
	for rev := max(start, h.From); rev <= min(last, h.To); rev++ {
		want, got := h.For(seg.Spec, rev), byRev[rev]
		used := make([]bool, len(got))
		order := true
		for wi, w := range want {
			found := -1
			for gi, g := range got {
				if !used[gi] && string(g.ev.Kv.Key) == string(w.Kv.Key) {
					found = gi
					break
				}
			}
			if found < 0 {
				var near []int
				if len(got) > 0 {
					near = append(near, got[0].resp)
				}
				c.fail(reliable, rev, near, "missed event %s (the watcher has seen up to revision %d)", fmtEvent(w), last)
				continue
			}
			used[found] = true
			if found != wi {
				order = false
			}
			g := got[found]
			if g.ev.Type != w.Type || !proto.Equal(g.ev.Kv, w.Kv) || !proto.Equal(g.ev.PrevKv, w.PrevKv) {
				c.fail(Fields, rev, []int{g.resp}, "event %s is\n\t\t%v\n\twant\n\t\t%v", fmtEvent(g.ev), g.ev, w)
			}
		}
		for gi, g := range got {
			if !used[gi] {
				c.fail(reliable, rev, []int{g.resp}, "unexpected event %s: not in the history for this watcher", fmtEvent(g.ev))
				order = true // reported already
			}
		}
		if !order && len(got) == len(want) {
			c.fail(Ordered, rev, []int{got[0].resp}, "revision %d's events arrived in another order than the history's", rev)
		}
	}
	return c.vs
}

package watchcheck

import (
	"errors"
	"fmt"
	"sort"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// History is the truth: the exact events of every revision in [From, To],
// in the order the server applied them, with prev_kv where it existed.
type History struct {
	From, To int64
	revs     map[int64][]*mvccpb.Event
	closed   int64 // Extend declared every revision up to here complete
}

// NewHistory returns an empty history that will start at revision from.
func NewHistory(from int64) *History {
	return &History{From: from, To: from - 1, revs: map[int64][]*mvccpb.Event{}}
}

// Add appends events; their revisions must be at least From and never
// below the last added. It extends To to the last event's revision.
func (h *History) Add(evs ...*mvccpb.Event) error {
	for _, ev := range evs {
		rev := ev.Kv.ModRevision
		if rev < h.From {
			return fmt.Errorf("history: event %s before the history's start %d", fmtEvent(ev), h.From)
		}
		if rev < h.To || rev <= h.closed {
			return fmt.Errorf("history: event %s after revision %d was closed", fmtEvent(ev), h.To)
		}
		h.revs[rev] = append(h.revs[rev], ev)
		h.To = rev
	}
	return nil
}

// Extend declares every revision up to to complete (those without events
// have none in the history's key space).
func (h *History) Extend(to int64) {
	h.To = max(h.To, to)
	h.closed = h.To
}

// Events returns revision rev's events.
func (h *History) Events(rev int64) []*mvccpb.Event { return h.revs[rev] }

// Len is the number of events.
func (h *History) Len() int {
	n := 0
	for _, evs := range h.revs {
		n += len(evs)
	}
	return n
}

// For returns the events a watcher with spec gets for revision rev: those
// in its range and past its filters, with prev_kv only if it asked for it.
func (h *History) For(spec Spec, rev int64) []*mvccpb.Event {
	var out []*mvccpb.Event
	for _, ev := range h.revs[rev] {
		if !spec.Wants(ev) {
			continue
		}
		if !spec.PrevKV && ev.PrevKv != nil {
			ev = &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
		}
		out = append(out, ev)
	}
	return out
}

// Consistent checks that the history chains up from the key/values in
// initial (nil: none): a put of a live key bumps its version and keeps its
// create revision, a put of an absent key creates it at version 1, a delete
// removes a live key, every event's mod revision is its revision, and every
// prev_kv present is the key's previous state.
func (h *History) Consistent(initial map[string]*mvccpb.KeyValue) error {
	state := map[string]*mvccpb.KeyValue{}
	for k, kv := range initial {
		state[k] = kv
	}
	var errs []error
	fail := func(format string, args ...any) {
		if len(errs) < 20 {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	for rev := h.From; rev <= h.To; rev++ {
		seen := map[string]bool{}
		for _, ev := range h.revs[rev] {
			key := string(ev.Kv.Key)
			if seen[key] {
				fail("history: revision %d changes %q twice", rev, key)
			}
			seen[key] = true
			if ev.Kv.ModRevision != rev {
				fail("history: event %s filed under revision %d", fmtEvent(ev), rev)
			}
			prev := state[key]
			if ev.PrevKv != nil && (prev == nil || !proto.Equal(ev.PrevKv, prev)) {
				fail("history: %s has prev_kv %v, want %v", fmtEvent(ev), ev.PrevKv, prev)
			}
			switch ev.Type {
			case mvccpb.Event_PUT:
				want := &mvccpb.KeyValue{Key: ev.Kv.Key, CreateRevision: rev, ModRevision: rev, Version: 1,
					Value: ev.Kv.Value, Lease: ev.Kv.Lease}
				if prev != nil {
					want.CreateRevision, want.Version = prev.CreateRevision, prev.Version+1
				}
				if !proto.Equal(ev.Kv, want) {
					fail("history: %s has kv {create=%d version=%d}, want {create=%d version=%d}",
						fmtEvent(ev), ev.Kv.CreateRevision, ev.Kv.Version, want.CreateRevision, want.Version)
				}
				state[key] = ev.Kv
			case mvccpb.Event_DELETE:
				if prev == nil {
					fail("history: %s deletes an absent key", fmtEvent(ev))
				}
				delete(state, key)
			}
		}
	}
	return errors.Join(errs...)
}

// Write is one acknowledged write: the header revision of its response and
// what it did (for a txn, the ops of the branch that ran). A write that
// changed nothing (a delete of nothing) has no puts and no deletions.
type Write struct {
	Rev     int64
	Puts    []KV
	Deletes []Deletion
}

// KV is a put key and value.
type KV struct{ Key, Value string }

// Deletion is a delete of [Key, End) (End "" for Key alone, "\x00" for
// every key from Key) that removed Deleted keys.
type Deletion struct {
	Key, End string
	Deleted  int64
}

func (w Write) changes() bool {
	if len(w.Puts) > 0 {
		return true
	}
	for _, d := range w.Deletes {
		if d.Deleted > 0 {
			return true
		}
	}
	return false
}

// CheckWrites cross-checks the history against the acknowledged writes:
// every write that changed something owns its revision alone, and that
// revision holds exactly its puts (with their values) and as many deletes
// in each of its ranges as it reported. With complete, every revision of
// the history must belong to one of the writes.
func (h *History) CheckWrites(writes []Write, complete bool) error {
	var errs []error
	fail := func(format string, args ...any) {
		if len(errs) < 20 {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	owner := map[int64]int{}
	sorted := append([]Write(nil), writes...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Rev < sorted[j].Rev })
	for i, w := range sorted {
		if !w.changes() {
			if w.Rev > h.To {
				fail("writes: a no-op write was acknowledged at revision %d, after the history's end %d", w.Rev, h.To)
			}
			continue
		}
		if w.Rev < h.From || w.Rev > h.To {
			fail("writes: write at revision %d is outside the history [%d,%d]", w.Rev, h.From, h.To)
			continue
		}
		if j, dup := owner[w.Rev]; dup {
			fail("writes: writes %+v and %+v both acknowledged at revision %d", sorted[j], w, w.Rev)
			continue
		}
		owner[w.Rev] = i
		evs := h.revs[w.Rev]
		want := len(w.Puts)
		for _, d := range w.Deletes {
			want += int(d.Deleted)
		}
		if len(evs) != want {
			fail("writes: revision %d has %d events, its write %+v made %d", w.Rev, len(evs), w, want)
			continue
		}
		used := make([]bool, len(evs))
		for _, p := range w.Puts {
			found := false
			for k, ev := range evs {
				if !used[k] && ev.Type == mvccpb.Event_PUT && string(ev.Kv.Key) == p.Key {
					used[k], found = true, true
					if string(ev.Kv.Value) != p.Value {
						fail("writes: revision %d put %q with a value of %d bytes, the write had %d bytes",
							w.Rev, p.Key, len(ev.Kv.Value), len(p.Value))
					}
					break
				}
			}
			if !found {
				fail("writes: revision %d lacks the put of %q", w.Rev, p.Key)
			}
		}
		for _, d := range w.Deletes {
			spec := Spec{Key: d.Key, End: d.End}
			n := int64(0)
			for k, ev := range evs {
				if !used[k] && ev.Type == mvccpb.Event_DELETE && spec.Matches(string(ev.Kv.Key)) && n < d.Deleted {
					used[k] = true
					n++
				}
			}
			if n != d.Deleted {
				fail("writes: revision %d has %d deletes in %s, the write deleted %d", w.Rev, n, spec, d.Deleted)
			}
		}
	}
	if complete {
		for rev := h.From; rev <= h.To; rev++ {
			if _, ok := owner[rev]; !ok {
				fail("writes: revision %d (%d events) matches no acknowledged write", rev, len(h.revs[rev]))
			}
		}
	}
	return errors.Join(errs...)
}

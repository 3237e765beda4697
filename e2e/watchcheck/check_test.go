package watchcheck

import (
	"errors"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// A small history over keys a, b, c:
//
//	2: put a=a1          3: put b=b1, put c=c1 (one txn)
//	4: put a=a2          5: delete b            6: put a=a3
func testHistory(t *testing.T) *History {
	t.Helper()
	kv := func(k, v string, create, mod, ver int64) *mvccpb.KeyValue {
		return &mvccpb.KeyValue{Key: []byte(k), Value: []byte(v), CreateRevision: create, ModRevision: mod, Version: ver}
	}
	put := func(kv, prev *mvccpb.KeyValue) *mvccpb.Event {
		return &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: kv, PrevKv: prev}
	}
	a1, a2, a3 := kv("a", "a1", 2, 2, 1), kv("a", "a2", 2, 4, 2), kv("a", "a3", 2, 6, 3)
	b1, c1 := kv("b", "b1", 3, 3, 1), kv("c", "c1", 3, 3, 1)
	h := NewHistory(2)
	err := h.Add(put(a1, nil), put(b1, nil), put(c1, nil), put(a2, a1),
		&mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte("b"), ModRevision: 5}, PrevKv: b1},
		put(a3, a2))
	if err != nil {
		t.Fatal(err)
	}
	h.Extend(6)
	if err := h.Consistent(nil); err != nil {
		t.Fatalf("test history inconsistent: %v", err)
	}
	return h
}

var allABC = Spec{Key: "a", End: "d", StartRev: 2}

// resp builds an event response from the history's events of revs for spec.
func resp(h *History, spec Spec, revs ...int64) Response {
	r := Response{WatchID: 1, HeaderRev: 6}
	for _, rev := range revs {
		r.Events = append(r.Events, h.For(spec, rev)...)
	}
	return r
}

func record(spec Spec, rs ...Response) *Recording {
	rec := NewRecording("w", spec)
	for _, r := range rs {
		rec.Add(r)
	}
	return rec
}

func progress(rev int64) Response { return Response{WatchID: -1, HeaderRev: rev} }

func TestCheckAcceptsValidRecordings(t *testing.T) {
	h := testHistory(t)
	created := Response{WatchID: 1, HeaderRev: 1, Created: true}
	frag1, frag2 := resp(h, allABC, 3), resp(h, allABC, 3)
	frag1.Events, frag1.Fragment = frag1.Events[:1], true
	frag2.Events = frag2.Events[1:]
	noDel := allABC
	noDel.NoDelete, noDel.PrevKV = true, true
	fromZero := allABC
	fromZero.StartRev = 0

	resumed := record(allABC, created, resp(h, allABC, 2, 3), progress(3), resp(h, allABC, 4))
	resumed.Resume()
	resumed.Add(resp(h, allABC, 5))
	resumed.Add(resp(h, allABC, 6))

	for name, rec := range map[string]*Recording{
		"live":       record(allABC, created, resp(h, allABC, 2), resp(h, allABC, 3), resp(h, allABC, 4), resp(h, allABC, 5), resp(h, allABC, 6)),
		"catch-up":   record(allABC, created, resp(h, allABC, 2, 3, 4), progress(4), resp(h, allABC, 5, 6)),
		"fragments":  record(allABC, created, resp(h, allABC, 2), frag1, frag2, resp(h, allABC, 4, 5, 6)),
		"filtered":   record(noDel, created, resp(h, noDel, 2, 3, 4), resp(h, noDel, 6)),
		"single key": record(Spec{Key: "b", StartRev: 4}, created, progress(4), resp(h, allABC, 5)),
		"from zero":  record(fromZero, Response{WatchID: 1, HeaderRev: 3, Created: true}, resp(h, allABC, 4), resp(h, allABC, 5)),
		"partial":    record(allABC, created, resp(h, allABC, 2)), // has seen up to 2 only
		"resumed":    resumed,
		"compacted":  record(allABC, created, resp(h, allABC, 2), Response{WatchID: 1, Canceled: true, CompactRevision: 4}),
	} {
		if err := Check(h, rec); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestCheckCatchesEachBrokenGuarantee(t *testing.T) {
	h := testHistory(t)
	created := Response{WatchID: 1, HeaderRev: 1, Created: true}
	withPrev := allABC
	withPrev.PrevKV = true
	split1, split2 := resp(h, allABC, 3), resp(h, allABC, 3)
	split1.Events, split2.Events = split1.Events[:1], split2.Events[1:]
	badValue := resp(h, allABC, 4)
	ev := proto.Clone(badValue.Events[0]).(*mvccpb.Event)
	ev.Kv.Value = []byte("zz")
	badValue.Events = []*mvccpb.Event{ev}

	gapOnResume := record(allABC, created, resp(h, allABC, 2, 3))
	gapOnResume.Resume()
	gapOnResume.Add(resp(h, allABC, 5)) // 4 missing
	wrongStart := record(allABC, created, resp(h, allABC, 2, 3))
	wrongStart.Resume()
	wrongStart.Add(Response{})
	segs := wrongStart.segs
	segs[1].Spec.StartRev, segs[1].Resps = 5, []Response{resp(h, allABC, 5)}

	for _, c := range []struct {
		guarantee string
		rec       *Recording
	}{
		{Ordered, record(allABC, created, resp(h, allABC, 2), resp(h, allABC, 4), resp(h, allABC, 3))},
		{Unique, record(allABC, created, resp(h, allABC, 2, 3), resp(h, allABC, 3, 4))},
		{Reliable, record(allABC, created, resp(h, allABC, 2, 3), resp(h, allABC, 5))},
		{Reliable, record(allABC, created, resp(h, allABC, 2), progress(4))},
		{Reliable, record(Spec{Key: "a", StartRev: 2}, created, resp(h, allABC, 2, 3))}, // b, c not watched
		{Reliable, record(Spec{Key: "a", End: "d", StartRev: 4}, created, resp(h, allABC, 2, 4))},
		{Atomic, record(allABC, created, resp(h, allABC, 2), split1, split2, resp(h, allABC, 4))},
		{Resumable, gapOnResume},
		{Resumable, wrongStart},
		{Bookmarkable, record(allABC, created, resp(h, allABC, 2, 3), progress(4), resp(h, allABC, 4))},
		{Fields, record(allABC, created, resp(h, allABC, 2, 3), badValue)},
		{Fields, record(withPrev, created, resp(h, allABC, 2, 3, 4))}, // no prev_kv
		{Fields, record(allABC, created, resp(h, withPrev, 2, 3, 4))}, // prev_kv not asked for
		{Compacted, record(allABC, created, resp(h, allABC, 2), Response{WatchID: 1, CompactRevision: 4})},
		{Compacted, record(allABC, created, resp(h, allABC, 2, 3, 4), Response{WatchID: 1, Canceled: true, CompactRevision: 4})},
		{Protocol, record(allABC, created, Response{WatchID: 1, Canceled: true}, resp(h, allABC, 2))},
	} {
		err := Check(h, c.rec)
		var vs Violations
		if !errors.As(err, &vs) || !vs.Has(c.guarantee) {
			t.Errorf("want a %s violation, got: %v", c.guarantee, err)
			continue
		}
		if !strings.Contains(err.Error(), c.guarantee+" broken: watcher \"w\"") {
			t.Errorf("error does not name the guarantee and watcher: %v", err)
		}
	}
}

func TestHistoryChecks(t *testing.T) {
	h := testHistory(t)
	good := []Write{
		{Rev: 2, Puts: []KV{{"a", "a1"}}},
		{Rev: 3, Puts: []KV{{"b", "b1"}, {"c", "c1"}}},
		{Rev: 4, Puts: []KV{{"a", "a2"}}},
		{Rev: 5, Deletes: []Deletion{{Key: "a", End: "c", Deleted: 1}}},
		{Rev: 5, Deletes: []Deletion{{Key: "x", Deleted: 0}}}, // a no-op
		{Rev: 6, Puts: []KV{{"a", "a3"}}},
	}
	if err := h.CheckWrites(good, true); err != nil {
		t.Errorf("valid writes: %v", err)
	}
	bad := map[string][]Write{
		"missing revision": good[:4],
		"wrong value":      {{Rev: 2, Puts: []KV{{"a", "zz"}}}},
		"wrong count":      {{Rev: 5, Deletes: []Deletion{{Key: "a", End: "c", Deleted: 2}}}},
		"two owners":       {{Rev: 4, Puts: []KV{{"a", "a2"}}}, {Rev: 4, Puts: []KV{{"a", "a2"}}}},
		"beyond history":   {{Rev: 7, Puts: []KV{{"a", "a4"}}}},
	}
	for name, ws := range bad {
		if err := h.CheckWrites(ws, name == "missing revision"); err == nil {
			t.Errorf("%s: CheckWrites passed", name)
		}
	}

	broken := NewHistory(2)
	_ = broken.Add(&mvccpb.Event{Type: mvccpb.Event_PUT, Kv: &mvccpb.KeyValue{Key: []byte("a"), CreateRevision: 2, ModRevision: 2, Version: 2}})
	if err := broken.Consistent(nil); err == nil {
		t.Error("Consistent accepted a first put at version 2")
	}
	if err := broken.Add(&mvccpb.Event{Type: mvccpb.Event_PUT, Kv: &mvccpb.KeyValue{Key: []byte("a"), ModRevision: 1}}); err == nil {
		t.Error("Add accepted an event going back in revision")
	}
}

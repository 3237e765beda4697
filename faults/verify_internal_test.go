package faults

import (
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// verify must catch what a crash may not leave. Each case is a history
// and a member state with one flaw.
func TestVerifyCatches(t *testing.T) {
	kv := func(key, val string, rev, lease int64) *mvccpb.KeyValue {
		return &mvccpb.KeyValue{Key: []byte(key), Value: []byte(val), CreateRevision: rev, ModRevision: rev, Version: 1, Lease: lease}
	}
	// The history: a put (rev 2), a txn (rev 3) deleting nothing, a
	// delete of the put (rev 4), a grant, a leased put (rev 5), all
	// acknowledged in that order, each issued after the one before.
	history := func() *model {
		m := newModel()
		ops := []*op{
			{kind: opPut, writes: []kvWrite{{"f/0/1", "a"}}},
			{kind: opTxn, writes: []kvWrite{{"f/0/2/a", "x"}, {"f/0/2/b", "y"}}},
			{kind: opDelete, del: "f/0/1"},
			{kind: opGrant, lease: 7},
			{kind: opLeasedPut, writes: []kvWrite{{"f/0/3", "l"}}, lease: 7},
		}
		for i, o := range ops {
			m.issue(o)
			m.acked(o, int64(i+2))
		}
		ops[3].rev = 4 // a grant makes no revision
		ops[4].rev = 5
		return m
	}
	full := func() memberState {
		return memberState{rev: 5, leases: map[int64]bool{7: true}, kvs: map[string]*mvccpb.KeyValue{
			"f/0/2/a": kv("f/0/2/a", "x", 3, 0), "f/0/2/b": kv("f/0/2/b", "y", 3, 0), "f/0/3": kv("f/0/3", "l", 5, 7),
		}}
	}
	for _, c := range []struct {
		name   string
		cut    int64
		change func(st *memberState)
		want   string // in a violation
	}{
		{"all there", 5, func(*memberState) {}, ""},
		{"a prefix, past the cut", 2, func(st *memberState) {
			*st = memberState{rev: 3, leases: map[int64]bool{}, kvs: map[string]*mvccpb.KeyValue{
				"f/0/1": kv("f/0/1", "a", 2, 0), "f/0/2/a": kv("f/0/2/a", "x", 3, 0), "f/0/2/b": kv("f/0/2/b", "y", 3, 0)}}
		}, ""},
		{"acknowledged write lost", 5, func(st *memberState) { delete(st.kvs, "f/0/3"); st.rev = 4 }, "acknowledged before the crash"},
		{"half a txn", 5, func(st *memberState) { delete(st.kvs, "f/0/2/b") }, "did not take effect"},
		// Nothing had to survive, but the leased put did without the
		// grant acknowledged before it was issued.
		{"not a prefix", 0, func(st *memberState) { delete(st.leases, 7) }, "which took effect"},
		{"wrong value", 5, func(st *memberState) { st.kvs["f/0/3"] = kv("f/0/3", "z", 5, 7) }, `is "z"`},
		{"wrong revision", 5, func(st *memberState) { st.kvs["f/0/3"] = kv("f/0/3", "l", 4, 7) }, "written at revision 4"},
		{"lost lease", 5, func(st *memberState) { delete(st.leases, 7) }, "lease 7 absent"},
		{"revision behind its writes", 5, func(st *memberState) { st.rev = 4 }, "past the member's 4"},
		{"a key nobody wrote", 5, func(st *memberState) { st.kvs["f/9"] = kv("f/9", "?", 5, 0) }, "never wrote"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := history()
			st := full()
			c.change(&st)
			v := m.check(st, c.cut)
			got := strings.Join(v.violations, "\n")
			switch {
			case c.want == "" && got != "":
				t.Errorf("violations in a good state:\n%s", got)
			case c.want != "" && !strings.Contains(got, c.want):
				t.Errorf("want a violation with %q, got:\n%s", c.want, got)
			}
		})
	}
}

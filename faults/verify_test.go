package faults

import (
	"fmt"
	"math"
	"sort"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// A member's state after a crash must be what applying a prefix of the
// raft log gives. verify reads, from the keys and leases a member holds,
// whether each operation of the model took effect, and checks:
//
//   - all or nothing: a txn's keys (and the key it deletes), a revoke's
//     lease and key, agree on whether it took effect;
//   - acknowledged means durable: every operation acknowledged before the
//     crash (ack <= cut) took effect, with the value and revision its
//     client was told;
//   - prefix of the log: an operation that took effect implies every one
//     acknowledged before it was issued did; one that did not implies
//     none issued after its acknowledgement did;
//   - revisions agree: an acknowledged write whose revision is at most
//     the member's took effect (a prefix holds every revision up to its
//     last), and none that took effect is past it;
//   - nothing else: no key or lease the load never wrote.

// memberState is what a member holds under the load's keys, at rev.
type memberState struct {
	rev    int64
	kvs    map[string]*mvccpb.KeyValue
	leases map[int64]bool
}

type verdict int8

const (
	unknown verdict = iota
	took            // took effect
	lost            // did not
)

func (v verdict) String() string {
	return [...]string{"unknown", "took effect", "did not take effect"}[v]
}

// solver decides, for each operation, whether it took effect: operations
// known to agree share a group (union-find), each group a verdict and
// the reason for it.
type solver struct {
	ops    []*op
	parent []int
	val    []verdict
	why    []string
	bad    []string
}

func newSolver(ops []*op) *solver {
	s := &solver{ops: ops, parent: make([]int, len(ops)), val: make([]verdict, len(ops)), why: make([]string, len(ops))}
	for i := range s.parent {
		s.parent[i] = i
	}
	return s
}

func (s *solver) find(i int) int {
	for s.parent[i] != i {
		s.parent[i] = s.parent[s.parent[i]]
		i = s.parent[i]
	}
	return i
}

func (s *solver) verdict(o *op) verdict { return s.val[s.find(o.id)] }

// set records that o took effect or not; it reports whether that changed
// anything.
func (s *solver) set(o *op, v verdict, why string) bool {
	r := s.find(o.id)
	switch s.val[r] {
	case v:
		return false
	case unknown:
		s.val[r], s.why[r] = v, fmt.Sprintf("%v: %s", o, why)
		return true
	}
	s.bad = append(s.bad, fmt.Sprintf("%v %s (%s), but %s (%s)", o, v, why, s.val[r], s.why[r]))
	return false
}

// same records that a and b took effect together or not at all.
func (s *solver) same(a, b *op, why string) {
	ra, rb := s.find(a.id), s.find(b.id)
	if ra == rb {
		return
	}
	va, vb := s.val[ra], s.val[rb]
	if va != unknown && vb != unknown && va != vb {
		s.bad = append(s.bad, fmt.Sprintf("%v and %v take effect together (%s), but one %s (%s) and the other %s (%s)",
			a, b, why, va, s.why[ra], vb, s.why[rb]))
		return
	}
	s.parent[rb] = ra
	if va == unknown {
		s.val[ra], s.why[ra] = vb, s.why[rb]
	}
}

// verification is verify's outcome.
type verification struct {
	violations []string
	took, lost int // operations decided each way (the rest: either could be)
}

// allAcks is a cut that every acknowledgement must survive.
const allAcks = math.MaxInt64

// check checks st against the model: the acknowledgements up to cut
// must have survived; what the members answered that none may is a
// violation too.
func (m *model) check(st memberState, cut int64) verification {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := verify(m.ops, m.writer, m.deleter, m.granter, m.revoker, st, cut)
	v.violations = append(append([]string(nil), m.live...), v.violations...)
	return v
}

// verify checks st against the operations in ops, cut being the
// acknowledgements that must be durable.
func verify(ops []*op, writer, deleter map[string]*op, granter, revoker map[int64]*op, st memberState, cut int64) verification {
	s := newSolver(ops)
	var bad []string
	// What the keys say.
	txnRev := map[*op]int64{}
	for key, w := range writer {
		kv, present := st.kvs[key]
		d := deleter[key]
		if !present {
			if d != nil {
				s.same(w, d, fmt.Sprintf("%q absent", key))
			} else {
				s.set(w, lost, fmt.Sprintf("%q absent, and nothing deletes it", key))
			}
			continue
		}
		s.set(w, took, fmt.Sprintf("%q present", key))
		if d != nil {
			s.set(d, lost, fmt.Sprintf("%q present", key))
		}
		bad = append(bad, checkValue(w, key, kv, st.rev)...)
		if w.kind == opTxn {
			if r, ok := txnRev[w]; ok && r != kv.ModRevision {
				bad = append(bad, fmt.Sprintf("%v: its keys have revisions %d and %d", w, r, kv.ModRevision))
			}
			txnRev[w] = kv.ModRevision
		}
	}
	for key := range st.kvs {
		if writer[key] == nil {
			bad = append(bad, fmt.Sprintf("key %q: the load never wrote it", key))
		}
	}
	// What the leases say.
	for id, g := range granter {
		v := revoker[id]
		if st.leases[id] {
			s.set(g, took, fmt.Sprintf("lease %x present", id))
			if v != nil {
				s.set(v, lost, fmt.Sprintf("lease %x present", id))
			}
		} else if v != nil {
			s.same(g, v, fmt.Sprintf("lease %x absent", id))
		} else {
			s.set(g, lost, fmt.Sprintf("lease %x absent, and nothing revokes it", id))
		}
	}
	for id := range st.leases {
		if granter[id] == nil {
			bad = append(bad, fmt.Sprintf("lease %x: the load never granted it", id))
		}
	}
	// What the acknowledgements say.
	for _, o := range ops {
		if o.ack == 0 {
			continue
		}
		if o.ack <= cut {
			s.set(o, took, "acknowledged before the crash")
		}
		if o.bumps() && o.rev <= st.rev {
			s.set(o, took, fmt.Sprintf("its revision %d is at most the member's %d", o.rev, st.rev))
		}
	}
	s.order()
	for _, o := range ops {
		if o.ack > 0 && o.bumps() && o.rev > st.rev && s.verdict(o) == took {
			bad = append(bad, fmt.Sprintf("%v took effect, but the member is at revision %d", o, st.rev))
		}
	}
	res := verification{violations: append(bad, s.bad...)}
	for _, o := range ops {
		switch s.verdict(o) {
		case took:
			res.took++
		case lost:
			res.lost++
		}
	}
	return res
}

// order spreads verdicts along the log's order until nothing changes: an
// operation that took effect implies every one acknowledged before it was
// issued did; one acknowledged that did not implies every one issued
// after that acknowledgement did not.
func (s *solver) order() {
	acked := make([]*op, 0, len(s.ops))
	for _, o := range s.ops {
		if o.ack > 0 {
			acked = append(acked, o)
		}
	}
	sort.Slice(acked, func(i, j int) bool { return acked[i].ack < acked[j].ack })
	for changed := true; changed; {
		changed = false
		var upTo int64 // every acknowledgement up to it took effect
		var tookOp *op
		from := int64(-1) // every operation issued after it did not
		var lostOp *op
		for _, o := range s.ops {
			switch s.verdict(o) {
			case took:
				if o.after > upTo {
					upTo, tookOp = o.after, o
				}
			case lost:
				if o.ack > 0 && (from < 0 || o.ack < from) {
					from, lostOp = o.ack, o
				}
			}
		}
		for _, o := range acked {
			if o.ack > upTo {
				break
			}
			changed = s.set(o, took, fmt.Sprintf("acknowledged before %v was issued, which took effect", tookOp)) || changed
		}
		if from < 0 {
			continue
		}
		for _, o := range s.ops {
			if o.after >= from {
				changed = s.set(o, lost, fmt.Sprintf("issued after %v was acknowledged, which did not take effect", lostOp)) || changed
			}
		}
	}
}

// checkValue checks a present key against the operation that wrote it.
func checkValue(w *op, key string, kv *mvccpb.KeyValue, rev int64) []string {
	var bad []string
	var val string
	for _, x := range w.writes {
		if x.key == key {
			val = x.val
		}
	}
	if string(kv.Value) != val {
		bad = append(bad, fmt.Sprintf("%v: %q is %q, not %q", w, key, kv.Value, val))
	}
	if kv.Version != 1 || kv.CreateRevision != kv.ModRevision {
		bad = append(bad, fmt.Sprintf("%v: %q has version %d, created at %d, modified at %d: it was written once",
			w, key, kv.Version, kv.CreateRevision, kv.ModRevision))
	}
	if w.ack > 0 && kv.ModRevision != w.rev {
		bad = append(bad, fmt.Sprintf("%v: %q was written at revision %d", w, key, kv.ModRevision))
	}
	if kv.ModRevision > rev {
		bad = append(bad, fmt.Sprintf("%v: %q was written at revision %d, past the member's %d", w, key, kv.ModRevision, rev))
	}
	lease := int64(0)
	if w.kind == opLeasedPut {
		lease = w.lease
	}
	if kv.Lease != lease {
		bad = append(bad, fmt.Sprintf("%v: %q has lease %x, not %x", w, key, kv.Lease, lease))
	}
	return bad
}

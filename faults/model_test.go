package faults

import (
	"fmt"
	"sync"
)

// The model is every operation the load issued and what its client was
// told. Each key is written once and deleted at most once, each lease
// granted once, revoked at most once and given at most one key, so that
// whether an operation took effect can be read off a member's state
// (see verify.go).

type opKind uint8

const (
	opPut       opKind = iota // Put of a new key
	opTxn                     // Txn: three new keys and, maybe, the delete of an earlier put's
	opDelete                  // DeleteRange of an earlier put's key
	opGrant                   // LeaseGrant
	opLeasedPut               // Put of a new key with a granted lease
	opRevoke                  // LeaseRevoke (deletes its key, if it has one)
)

var opNames = [...]string{"put", "txn", "delete", "grant", "leased-put", "revoke"}

func (k opKind) String() string { return opNames[k] }

type op struct {
	id     int
	kind   opKind
	writes []kvWrite // the keys it puts
	del    string    // the key it deletes ("" none); a revoke's is its lease's key
	lease  int64     // the lease it grants, revokes, or attaches its key to
	// after is how many acknowledgements the load had seen when it issued
	// this operation: those operations precede it in the raft log.
	after int64
	ack   int64 // this operation's acknowledgement's number (from 1); 0: none
	rev   int64 // the revision its acknowledgement carried
	err   string
}

type kvWrite struct{ key, val string }

// bumps reports whether applying o makes a revision of its own, so the
// revision its acknowledgement carried is its own.
func (o *op) bumps() bool {
	return o.kind == opPut || o.kind == opTxn || o.kind == opDelete || o.kind == opLeasedPut
}

func (o *op) String() string {
	s := fmt.Sprintf("op %d %s", o.id, o.kind)
	if len(o.writes) > 0 {
		s += fmt.Sprintf(" put %q", o.writes[0].key)
		if len(o.writes) > 1 {
			s += fmt.Sprintf("+%d", len(o.writes)-1)
		}
	}
	if o.del != "" {
		s += fmt.Sprintf(" delete %q", o.del)
	}
	if o.lease != 0 {
		s += fmt.Sprintf(" lease %x", o.lease)
	}
	switch {
	case o.ack > 0:
		s += fmt.Sprintf(" (ack #%d at rev %d, issued after ack #%d)", o.ack, o.rev, o.after)
	case o.err != "":
		s += fmt.Sprintf(" (failed: %s; issued after ack #%d)", o.err, o.after)
	default:
		s += fmt.Sprintf(" (no answer; issued after ack #%d)", o.after)
	}
	return s
}

type model struct {
	mu      sync.Mutex
	ops     []*op
	acks    int64
	frozen  bool           // acknowledgements are not believed (see freeze)
	writer  map[string]*op // key -> the operation that puts it
	deleter map[string]*op // key -> the operation that deletes it
	granter map[int64]*op  // lease -> its grant
	revoker map[int64]*op  // lease -> its revoke
	live    []string       // what the members answered that no member may answer
}

func newModel() *model {
	return &model{writer: map[string]*op{}, deleter: map[string]*op{}, granter: map[int64]*op{},
		revoker: map[int64]*op{}}
}

// issue records o before it is sent.
func (m *model) issue(o *op) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o.id, o.after = len(m.ops), m.acks
	m.ops = append(m.ops, o)
	for _, w := range o.writes {
		m.writer[w.key] = o
	}
	if o.del != "" {
		m.deleter[o.del] = o
	}
	switch o.kind {
	case opGrant:
		m.granter[o.lease] = o
	case opRevoke:
		m.revoker[o.lease] = o
	}
}

// acked records o's acknowledgement at rev. It reports false when the
// acknowledgement is not believed (frozen): the operation then counts as
// unanswered.
func (m *model) acked(o *op, rev int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.frozen {
		o.err = "answered after the power loss"
		return false
	}
	m.acks++
	o.ack, o.rev = m.acks, rev
	return true
}

func (m *model) failed(o *op, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o.err = err.Error()
}

// wrong records a response no correct member gives.
func (m *model) wrong(o *op, what string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.live = append(m.live, fmt.Sprintf("%v: %s", o, what))
}

// freeze makes later acknowledgements unbelievable, until thaw: after a
// power loss the members still run until they are stopped, and what they
// acknowledge then may be on no disk the cluster restarts from. Call it
// while the power is down (power.cut's during), so every acknowledgement
// counted before is for data on the clones.
func (m *model) freeze() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.frozen = true
	return m.acks
}

func (m *model) thaw() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.frozen = false
}

// acked so far: every acknowledgement with a number up to it was counted
// before now.
func (m *model) ackCount() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.acks
}

func (m *model) opCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.ops)
}

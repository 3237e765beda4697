//go:build linux

package faults

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// The KV workload's history, checked for linearizability per key with
// porcupine against a model of one etcd key: its value and mod revision.

type opKind uint8

const (
	opGet opKind = iota
	opPut
	opDelete
	opCAS // txn: if value == Expect (or, with Absent, create revision == 0) then put else get
)

func (k opKind) String() string { return [...]string{"get", "put", "delete", "cas"}[k] }

// kvInput is what a client asked.
type kvInput struct {
	Op     opKind
	Key    string
	Value  string // put, cas: the value written
	Expect string // cas
	Absent bool   // cas: expects the key absent
}

// kvOutput is what it was answered. A write whose answer never came (an
// error: timeout, unavailable, connection lost) is Unknown: it may have
// taken effect at any time after it was sent, or never.
type kvOutput struct {
	Unknown   bool
	Succeeded bool   // cas
	Exists    bool   // get, failed cas: the key was there
	Value     string // get, failed cas
	Rev       int64  // get, failed cas: the key's mod revision; put, delete, cas: the header revision
	Deleted   int64  // delete
}

// unknownReturn is the return time of an operation that never returned:
// porcupine then lets it take effect anywhere after its call, or at the
// very end where nothing sees it.
const unknownReturn = math.MaxInt64 / 2

// keyState is one key as the model sees it. Rev is the mod revision when
// RevExact, else a strict lower bound (a write of unknown revision came
// after the last known one).
type keyState struct {
	Exists   bool
	Value    string
	Rev      int64
	RevExact bool
}

// seesRev reports whether a read of mod revision rev agrees with s.
func (s keyState) seesRev(rev int64) bool {
	if s.RevExact {
		return rev == s.Rev
	}
	return rev > s.Rev
}

// reads reports whether a read that found (exists, value, rev) agrees
// with s, and the state it pins down.
func (s keyState) reads(exists bool, value string, rev int64) (bool, keyState) {
	if exists != s.Exists {
		return false, s
	}
	if !exists {
		return true, s
	}
	if value != s.Value || !s.seesRev(rev) {
		return false, s
	}
	return true, keyState{Exists: true, Value: value, Rev: rev, RevExact: true}
}

// written is the state after a write of value at header revision rev
// (unknown: some revision above the current).
func (s keyState) written(exists bool, value string, rev int64, unknown bool) keyState {
	if unknown {
		return keyState{Exists: exists, Value: value, Rev: s.Rev}
	}
	return keyState{Exists: exists, Value: value, Rev: rev, RevExact: true}
}

func (in kvInput) casHolds(s keyState) bool {
	if in.Absent {
		return !s.Exists
	}
	return s.Exists && s.Value == in.Expect
}

func stepKey(st, inp, outp any) (bool, any) {
	s, in, out := st.(keyState), inp.(kvInput), outp.(kvOutput)
	switch in.Op {
	case opGet:
		return s.reads(out.Exists, out.Value, out.Rev)
	case opPut:
		if !out.Unknown && out.Rev <= s.Rev {
			return false, s
		}
		return true, s.written(true, in.Value, out.Rev, out.Unknown)
	case opDelete:
		if out.Unknown {
			if !s.Exists {
				return true, s
			}
			return true, s.written(false, "", 0, true)
		}
		if s.Exists != (out.Deleted == 1) || (s.Exists && out.Rev <= s.Rev) {
			return false, s
		}
		if !s.Exists {
			return true, s
		}
		return true, s.written(false, "", out.Rev, false)
	case opCAS:
		holds := in.casHolds(s)
		if out.Unknown {
			// If it took effect, it found the state it ran against.
			if !holds {
				return true, s
			}
			return true, s.written(true, in.Value, 0, true)
		}
		if out.Succeeded != holds {
			return false, s
		}
		if !holds {
			return s.reads(out.Exists, out.Value, out.Rev)
		}
		if out.Rev <= s.Rev {
			return false, s
		}
		return true, s.written(true, in.Value, out.Rev, false)
	}
	return false, s
}

// kvModel is one etcd key per partition, from absent.
var kvModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range h {
			k := op.Input.(kvInput).Key
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return keyState{} },
	Step: stepKey,
	DescribeOperation: func(inp, outp any) string {
		in, out := inp.(kvInput), outp.(kvOutput)
		var res string
		switch {
		case out.Unknown:
			res = "?"
		case in.Op == opGet || (in.Op == opCAS && !out.Succeeded):
			if out.Exists {
				res = fmt.Sprintf("%q@%d", out.Value, out.Rev)
			} else {
				res = "absent"
			}
			if in.Op == opCAS {
				res = "failed, " + res
			}
		case in.Op == opDelete:
			res = fmt.Sprintf("deleted %d @%d", out.Deleted, out.Rev)
		default:
			res = fmt.Sprintf("ok @%d", out.Rev)
		}
		switch in.Op {
		case opPut:
			return fmt.Sprintf("put(%s, %q) -> %s", in.Key, in.Value, res)
		case opCAS:
			cond := fmt.Sprintf("%q", in.Expect)
			if in.Absent {
				cond = "absent"
			}
			return fmt.Sprintf("cas(%s, %s -> %q) -> %s", in.Key, cond, in.Value, res)
		default:
			return fmt.Sprintf("%s(%s) -> %s", in.Op, in.Key, res)
		}
	},
	DescribeState: func(st any) string {
		s := st.(keyState)
		if !s.Exists {
			return "absent"
		}
		if s.RevExact {
			return fmt.Sprintf("%q@%d", s.Value, s.Rev)
		}
		return fmt.Sprintf("%q@>%d", s.Value, s.Rev)
	},
}

// checkLinearizable checks ops with porcupine within timeout. It returns
// the result and, when not linearizable, the keys whose histories are not
// and the info porcupine needs to draw them.
func checkLinearizable(ops []porcupine.Operation, timeout time.Duration) (porcupine.CheckResult, []string, porcupine.LinearizationInfo) {
	res, info := porcupine.CheckOperationsVerbose(kvModel, ops, timeout)
	if res != porcupine.Illegal {
		return res, nil, info
	}
	var bad []string
	for _, part := range kvModel.Partition(ops) {
		if porcupine.CheckOperations(kvModel, part) {
			continue
		}
		bad = append(bad, part[0].Input.(kvInput).Key)
	}
	return res, slices.Compact(bad), info
}

package raftwal

import "fmt"

// index is where each entry of the log is: for entries first..last, the
// segment (as seq - base) and offset of the record that holds it now.
// Eight bytes an entry: the WAL holds the entries since the last log
// truncation and those kept for slow followers, so this stays a small
// fraction of what the entries themselves take on disk.
//
// Positions never go back in the WAL as the index goes up: an entry
// written before a lower one was rewritten was dropped by that rewrite
// and must itself have been rewritten later. So the entries of the oldest
// segments are a prefix of the index (dropBefore).
type index struct {
	base  uint64 // the sequence number pos's segment numbers count from
	first uint64 // index of pos[0]; at least 1
	pos   []position
}

type position struct {
	seg uint32 // seq - base
	off uint32
}

// last is the last entry's index; first-1 when there is none (first is
// then where the log goes on).
func (x *index) last() uint64 { return x.first + uint64(len(x.pos)) - 1 }

// put records entry i at seq/off: i replaces the entry at i and drops the
// later ones, as an append does to raft's log; a gap after the last entry
// is corruption (or a caller's bug).
func (x *index) put(i, seq uint64, off int64) error {
	if off > 1<<32-1 || seq-x.base > 1<<32-1 {
		return fmt.Errorf("entry %d at segment %d offset %d: out of the index's range", i, seq, off)
	}
	p := position{seg: uint32(seq - x.base), off: uint32(off)}
	switch {
	case len(x.pos) == 0 || i < x.first:
		x.first, x.pos = i, append(x.pos[:0], p)
	case i > x.first+uint64(len(x.pos)):
		return fmt.Errorf("entry %d follows entry %d: entries are missing", i, x.last())
	default:
		x.pos = append(x.pos[:i-x.first], p)
	}
	return nil
}

// truncate drops the entries after i. The log goes on at i+1: when i
// is past the last entry (a snapshot's point), nothing before it is left.
func (x *index) truncate(i uint64) {
	switch {
	case len(x.pos) == 0 || i < x.first || i > x.last():
		x.first, x.pos = i+1, x.pos[:0]
	default:
		x.pos = x.pos[:i-x.first+1]
	}
}

func (x *index) get(i uint64) (seq uint64, off int64, ok bool) {
	if i < x.first || i-x.first >= uint64(len(x.pos)) {
		return 0, 0, false
	}
	p := x.pos[i-x.first]
	return x.base + uint64(p.seg), int64(p.off), true
}

// dropBefore forgets the entries in segments before seq.
func (x *index) dropBefore(seq uint64) {
	n := 0
	for n < len(x.pos) && x.base+uint64(x.pos[n].seg) < seq {
		n++
	}
	x.pos = append(x.pos[:0], x.pos[n:]...)
	x.first += uint64(n)
}

package leaseactor

import (
	"container/heap"
	"time"
)

// slot is a lease's place in one leaseHeap: when it is due there, and
// its index in the heap (-1 when not in it).
type slot struct {
	at    time.Time
	index int
}

// leaseHeap orders leases by one of their slots (the expiry heap by
// lease.exp, the checkpoint heap by lease.cp): a lease is in a heap at
// most once, and its slot's index says where.
type leaseHeap struct {
	ls   []*lease
	slot func(*lease) *slot
}

func expirySlot(ls *lease) *slot     { return &ls.exp }
func checkpointSlot(ls *lease) *slot { return &ls.cp }

func (h *leaseHeap) Len() int           { return len(h.ls) }
func (h *leaseHeap) Less(i, j int) bool { return h.slot(h.ls[i]).at.Before(h.slot(h.ls[j]).at) }
func (h *leaseHeap) Swap(i, j int) {
	h.ls[i], h.ls[j] = h.ls[j], h.ls[i]
	h.slot(h.ls[i]).index, h.slot(h.ls[j]).index = i, j
}
func (h *leaseHeap) Push(x any) {
	ls := x.(*lease)
	h.slot(ls).index = len(h.ls)
	h.ls = append(h.ls, ls)
}
func (h *leaseHeap) Pop() any {
	old := h.ls
	ls := old[len(old)-1]
	old[len(old)-1] = nil
	h.ls = old[:len(old)-1]
	h.slot(ls).index = -1
	return ls
}

// peek is the lease due first, nil when none is in the heap.
func (h *leaseHeap) peek() *lease {
	if len(h.ls) == 0 {
		return nil
	}
	return h.ls[0]
}

// clear empties the heap, marking every lease as out of it.
func (h *leaseHeap) clear() {
	for _, ls := range h.ls {
		h.slot(ls).index = -1
	}
	clear(h.ls)
	h.ls = h.ls[:0]
}

// schedule makes ls due at at: pushed, or moved if already in the heap.
func (h *leaseHeap) schedule(ls *lease, at time.Time) {
	s := h.slot(ls)
	s.at = at
	if s.index < 0 {
		heap.Push(h, ls)
	} else {
		heap.Fix(h, s.index)
	}
}

// remove takes ls out of the heap, if it is in it.
func (h *leaseHeap) remove(ls *lease) {
	if i := h.slot(ls).index; i >= 0 {
		heap.Remove(h, i)
	}
}

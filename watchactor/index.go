package watchactor

// index finds the watchers whose key or range holds a key. Single-key
// watchers are found with one map lookup; range watchers are grouped by
// their exact range, and each distinct range is checked, so the cost per
// event grows with the number of distinct ranges, not of watchers (many
// clients watching the same prefix share one check).
type index struct {
	keys   map[string]watcherSet
	ranges map[rangeID]watcherSet
}

type watcherSet map[*watcher]struct{}

// rangeID is a watcher's range: [key, end), or every key >= key when
// fromKey is set.
type rangeID struct {
	key, end string
	fromKey  bool
}

func (r rangeID) holds(k []byte) bool {
	return string(k) >= r.key && (r.fromKey || string(k) < r.end)
}

func newIndex() index {
	return index{keys: map[string]watcherSet{}, ranges: map[rangeID]watcherSet{}}
}

func (ix *index) add(w *watcher) {
	m, id := ix.keys, w.rng.key
	if w.isRange() {
		set := ix.ranges[w.rng]
		if set == nil {
			set = watcherSet{}
			ix.ranges[w.rng] = set
		}
		set[w] = struct{}{}
		return
	}
	set := m[id]
	if set == nil {
		set = watcherSet{}
		m[id] = set
	}
	set[w] = struct{}{}
}

func (ix *index) remove(w *watcher) {
	if w.isRange() {
		if set := ix.ranges[w.rng]; set != nil {
			delete(set, w)
			if len(set) == 0 {
				delete(ix.ranges, w.rng)
			}
		}
		return
	}
	if set := ix.keys[w.rng.key]; set != nil {
		delete(set, w)
		if len(set) == 0 {
			delete(ix.keys, w.rng.key)
		}
	}
}

func (ix *index) empty() bool { return len(ix.keys) == 0 && len(ix.ranges) == 0 }

// match calls fn for every watcher whose key or range holds k.
func (ix *index) match(k []byte, fn func(*watcher)) {
	for w := range ix.keys[string(k)] {
		fn(w)
	}
	for r, set := range ix.ranges {
		if r.holds(k) {
			for w := range set {
				fn(w)
			}
		}
	}
}

// holds reports whether any watcher in the index wants k.
func (ix *index) holds(k []byte) bool {
	if _, ok := ix.keys[string(k)]; ok {
		return true
	}
	for r := range ix.ranges {
		if r.holds(k) {
			return true
		}
	}
	return false
}

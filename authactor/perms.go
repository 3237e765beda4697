// Package authactor owns authentication for MetaStore: what is derived
// from the user and role records for the hot path, and tokens. The records
// themselves are replicated state applied by the store
// (storeactor/auth.go), in raft order with the keys they protect.
//
//   - Permissions: each user's merged key permissions, checked with etcd's
//     rules; State: the published auth state with etcd's checks (CheckOp,
//     CheckAdmin, CheckTxn, ...), used by the store at apply time for
//     writes and by the gateway for reads, watches and admin RPCs.
//   - SimpleTokens: the actor owning etcd's simple tokens, with an idle TTL,
//     checked lock-free through a TokenView.
package authactor

import (
	"bytes"
	"sort"

	"go.etcd.io/etcd/api/v3/authpb"
)

// Permissions are every user's read and write permissions, merged from
// their roles into sorted, disjoint key intervals. Immutable once built, so
// request paths on any goroutine may share one.
type Permissions struct {
	users map[string]*userPerms
}

type userPerms struct {
	root        bool
	read, write []interval
}

// interval is [start, end); a nil end is unbounded (etcd's "\x00" range end).
type interval struct{ start, end []byte }

// NewPermissions merges the permissions of users' roles. Roles a user
// names but that do not exist grant nothing, as in etcd.
func NewPermissions(users []*authpb.User, roles map[string]*authpb.Role) *Permissions {
	p := &Permissions{users: make(map[string]*userPerms, len(users))}
	for _, u := range users {
		up := &userPerms{}
		for _, rn := range u.Roles {
			if rn == "root" {
				up.root = true
			}
			r := roles[rn]
			if r == nil {
				continue
			}
			for _, perm := range r.KeyPermission {
				ivl := permInterval(perm)
				switch perm.PermType {
				case authpb.Permission_READ:
					up.read = append(up.read, ivl)
				case authpb.Permission_WRITE:
					up.write = append(up.write, ivl)
				case authpb.Permission_READWRITE:
					up.read = append(up.read, ivl)
					up.write = append(up.write, ivl)
				}
			}
		}
		up.read, up.write = merge(up.read), merge(up.write)
		p.users[string(u.Name)] = up
	}
	return p
}

// permInterval is the keys a permission covers: one key when its range end
// is empty, every key from Key on when it is "\x00".
func permInterval(perm *authpb.Permission) interval {
	switch {
	case len(perm.RangeEnd) == 0:
		return interval{perm.Key, pointEnd(perm.Key)}
	case len(perm.RangeEnd) == 1 && perm.RangeEnd[0] == 0:
		return interval{perm.Key, nil}
	}
	return interval{perm.Key, perm.RangeEnd}
}

// pointEnd is the smallest key after k: [k, pointEnd(k)) is k alone.
func pointEnd(k []byte) []byte { return append(append([]byte(nil), k...), 0) }

// endLess orders interval ends, nil (unbounded) last.
func endLess(a, b []byte) bool {
	switch {
	case a == nil:
		return false
	case b == nil:
		return true
	}
	return bytes.Compare(a, b) < 0
}

// merge sorts intervals and joins those that overlap or touch.
func merge(ivs []interval) []interval {
	if len(ivs) == 0 {
		return nil
	}
	sort.Slice(ivs, func(i, j int) bool { return bytes.Compare(ivs[i].start, ivs[j].start) < 0 })
	out := []interval{ivs[0]}
	for _, iv := range ivs[1:] {
		last := &out[len(out)-1]
		if last.end == nil || bytes.Compare(iv.start, last.end) <= 0 {
			if endLess(last.end, iv.end) {
				last.end = iv.end
			}
			continue
		}
		out = append(out, iv)
	}
	return out
}

// covers reports whether the merged intervals hold all of [start, end).
func covers(ivs []interval, start, end []byte) bool {
	i := sort.Search(len(ivs), func(i int) bool { return bytes.Compare(ivs[i].start, start) > 0 }) - 1
	if i < 0 {
		return false
	}
	return !endLess(ivs[i].end, end)
}

// Permitted reports whether user may read (write false) or write the keys
// of a request: key alone when end is empty, [key, end) otherwise, every
// key from key on when end is "\x00". A user with the root role may do
// anything; an unknown user nothing.
func (p *Permissions) Permitted(user string, key, end []byte, write bool) bool {
	up := p.users[user]
	if up == nil {
		return false
	}
	if up.root {
		return true
	}
	ivs := up.read
	if write {
		ivs = up.write
	}
	switch {
	case len(end) == 0:
		return coversKey(ivs, key)
	case len(end) == 1 && end[0] == 0:
		end = nil
	}
	return covers(ivs, key, end)
}

// coversKey is covers(ivs, key, pointEnd(key)) without building the end:
// [key, key+"\x00") lies in [start, end) exactly when start <= key < end.
func coversKey(ivs []interval, key []byte) bool {
	i := sort.Search(len(ivs), func(i int) bool { return bytes.Compare(ivs[i].start, key) > 0 }) - 1
	return i >= 0 && (ivs[i].end == nil || bytes.Compare(key, ivs[i].end) < 0)
}

// Known reports whether user exists.
func (p *Permissions) Known(user string) bool { return p.users[user] != nil }

// IsRoot reports whether user has the root role.
func (p *Permissions) IsRoot(user string) bool {
	up := p.users[user]
	return up != nil && up.root
}

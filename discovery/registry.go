package discovery

import (
	"errors"
	"path"
	"slices"
	"strconv"
	"strings"

	"go.etcd.io/etcd/client/pkg/v3/types"
)

// etcd's errors, with etcd's words: an operator (or etcd's tooling) reads
// the same message whichever server failed.
var (
	ErrInvalidURL     = errors.New("discovery: invalid peer URL")
	ErrBadSizeKey     = errors.New("discovery: size key is bad")
	ErrSizeNotFound   = errors.New("discovery: size key not found")
	ErrFullCluster    = errors.New("discovery: cluster is full")
	ErrTooManyRetries = errors.New("discovery: too many retries")
)

// Error is a failure to join through the discovery service (etcd's
// DiscoveryError, and its text): etcd exits 1 on it, telling the operator
// not to reuse the token.
type Error struct {
	Op  string
	Err error
}

func (e *Error) Error() string {
	return "failed to " + e.Op + " discovery cluster (" + e.Err.Error() + ")"
}
func (e *Error) Unwrap() error { return e.Err }

const registryPrefix = "/_etcd/registry"

// SizeKey is where the operator puts the expected cluster size (a
// decimal number) before starting the members.
func SizeKey(token string) string { return path.Join(registryPrefix, token, "_config/size") }

// MembersPrefix is the prefix of the members' registrations.
func MembersPrefix(token string) string { return path.Join(registryPrefix, token, "members") }

// MemberKey is a member's registration: its id in lower-case hex, unpadded
// (etcd's types.ID.String). Its value is the member's --initial-cluster
// entries, "name=url" for each peer URL, sorted (etcd's URLsMap.String).
func MemberKey(token string, id uint64) string {
	return path.Join(MembersPrefix(token), strconv.FormatUint(id, 16))
}

// registration is one member's key as read from the service.
type registration struct {
	key, value string
	createRev  int64
}

// registry is the registrations seen so far, ordered by creation
// revision: when more than size members register at once, the first size
// to have written their key make the cluster, on every member alike.
type registry struct {
	prefix  string
	members []registration
}

// add records a registration read or watched from the service; etcd's
// messages say why one is skipped.
func (r *registry) add(key, value string, createRev int64) error {
	key, value = strings.TrimSpace(key), strings.TrimSpace(value)
	switch {
	case !strings.HasPrefix(key, r.prefix):
		return errors.New("invalid peer registry key")
	case !strings.ContainsRune(value, '='):
		return errors.New("invalid peer info returned from discovery service")
	case slices.ContainsFunc(r.members, func(m registration) bool { return m.key == key }):
		return errors.New("found duplicate peer from discovery service")
	}
	i, _ := slices.BinarySearchFunc(r.members, createRev, func(m registration, rev int64) int {
		if m.createRev <= rev { // after those of the same revision: keep arrival order
			return -1
		}
		return 1
	})
	r.members = slices.Insert(r.members, i, registration{key: key, value: value, createRev: createRev})
	return nil
}

// full reports whether size members registered before key (all of them,
// if key has not registered): the cluster has no room for key's member.
func (r *registry) full(key string, size int) bool {
	pos := slices.IndexFunc(r.members, func(m registration) bool { return m.key == key })
	if pos < 0 {
		pos = len(r.members)
	}
	return pos >= size
}

// initialCluster is the --initial-cluster string of the first size
// members.
func (r *registry) initialCluster(size int) (string, error) {
	var entries []string
	for _, m := range r.members[:min(size, len(r.members))] {
		entries = append(entries, m.value)
	}
	s := strings.Join(entries, ",")
	if _, err := types.NewURLsMap(s); err != nil {
		return s, ErrInvalidURL
	}
	return s, nil
}

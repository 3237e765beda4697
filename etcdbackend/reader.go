package etcdbackend

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/authpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/server/v3/lease/leasepb"
	"google.golang.org/protobuf/proto"
)

// ErrCorrupt is wrapped by every error about the file's contents (as
// opposed to reading it): a damaged or foreign file.
var ErrCorrupt = errors.New("not a valid etcd backend")

// ErrInUse: another process (a running etcd) holds the backend.
var ErrInUse = errors.New("etcd backend is in use by another process (is etcd still running? stop it first)")

// Backend is an etcd backend opened read-only.
type Backend struct {
	db *bolt.DB
}

// Open opens the bbolt file at path read-only, waiting up to timeout
// (0: for ever) for a running etcd's lock. Bytes after the database (a
// snapshot's checksum) are ignored.
func Open(path string, timeout time.Duration) (b *Backend, err error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	defer recoverCorrupt(&err)
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: timeout})
	switch {
	case errors.Is(err, bolt.ErrTimeout):
		return nil, ErrInUse
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	b = &Backend{db: db}
	if err := b.view(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketKey, bucketMeta} {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("%w: no %q bucket", ErrCorrupt, name)
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, err
	}
	return b, nil
}

func (b *Backend) Close() error { return b.db.Close() }

// recoverCorrupt turns a bbolt panic (it panics on some damaged pages)
// into an error.
func recoverCorrupt(err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("%w: %v", ErrCorrupt, p)
	}
}

// view runs fn in a read transaction, with bbolt's panics as errors, and
// so too its memory faults: a damaged page can point bbolt outside the
// mapped file.
func (b *Backend) view(fn func(tx *bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer recoverCorrupt(&err)
	return b.db.View(fn)
}

// Meta reads the meta and auth buckets.
func (b *Backend) Meta() (Meta, error) {
	m := Meta{ScheduledCompact: -1, FinishedCompact: -1}
	err := b.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		var err error
		if m.ConsistentIndex, err = getU64(meta, metaConsistentIndex); err != nil {
			return err
		}
		if m.Term, err = getU64(meta, metaTerm); err != nil {
			return err
		}
		for _, c := range []struct {
			key []byte
			rev *int64
		}{{metaScheduledCompact, &m.ScheduledCompact}, {metaFinishedCompact, &m.FinishedCompact}} {
			if v := meta.Get(c.key); v != nil {
				main, _, _, err := parseRevKey(v)
				if err != nil {
					return fmt.Errorf("meta %s: %w", c.key, err)
				}
				*c.rev = main
			}
		}
		m.StorageVersion = string(meta.Get(metaStorageVersion))
		if auth := tx.Bucket(bucketAuth); auth != nil {
			v := auth.Get(authEnabledKey)
			m.AuthEnabled = len(v) == 1 && v[0] == 1
			if m.AuthRevision, err = getU64(auth, authRevisionKey); err != nil {
				return err
			}
		}
		return nil
	})
	return m, err
}

func getU64(b *bolt.Bucket, key []byte) (uint64, error) {
	v := b.Get(key)
	switch len(v) {
	case 0:
		return 0, nil
	case 8:
		return binary.BigEndian.Uint64(v), nil
	}
	return 0, fmt.Errorf("%w: %s is %d bytes, not 8", ErrCorrupt, key, len(v))
}

// Version is one entry of the key bucket: a version of a key at revision
// Main.Sub, or a tombstone (KV holds only the key then). ModRevision is
// set to Main.
type Version struct {
	Main, Sub int64
	Tombstone bool
	KV        *mvccpb.KeyValue
}

// RevisionSpan returns the first and last main revisions in the key
// bucket (0, 0 when empty): what a progress report measures against.
func (b *Backend) RevisionSpan() (first, last int64, err error) {
	err = b.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketKey).Cursor()
		k, _ := c.First()
		if k == nil {
			return nil
		}
		if first, _, _, err = parseRevKey(k); err != nil {
			return err
		}
		k, _ = c.Last()
		last, _, _, err = parseRevKey(k)
		return err
	})
	return first, last, err
}

// Versions calls fn with every entry of the key bucket, in revision order,
// from one read transaction. fn must not keep v: it is reused, and its
// key and value alias the file's mapped memory, valid only during fn.
func (b *Backend) Versions(fn func(v *Version) error) error {
	return b.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketKey).Cursor()
		v := &Version{KV: new(mvccpb.KeyValue)}
		for k, val := c.First(); k != nil; k, val = c.Next() {
			var err error
			if v.Main, v.Sub, v.Tombstone, err = parseRevKey(k); err != nil {
				return err
			}
			if err := decodeKeyValue(val, v.KV); err != nil {
				return fmt.Errorf("%w: revision %d.%d: %v", ErrCorrupt, v.Main, v.Sub, err)
			}
			if len(v.KV.Key) == 0 {
				return fmt.Errorf("%w: revision %d.%d has no key", ErrCorrupt, v.Main, v.Sub)
			}
			v.KV.ModRevision = v.Main
			if err := fn(v); err != nil {
				return err
			}
		}
		return nil
	})
}

// Leases calls fn with every lease.
func (b *Backend) Leases(fn func(l *leasepb.Lease) error) error {
	return forEachProto(b, bucketLease, func() *leasepb.Lease { return new(leasepb.Lease) }, fn)
}

// Users calls fn with every auth user.
func (b *Backend) Users(fn func(u *authpb.User) error) error {
	return forEachProto(b, bucketAuthUsers, func() *authpb.User { return new(authpb.User) }, fn)
}

// Roles calls fn with every auth role.
func (b *Backend) Roles(fn func(r *authpb.Role) error) error {
	return forEachProto(b, bucketAuthRoles, func() *authpb.Role { return new(authpb.Role) }, fn)
}

// forEachProto decodes every value of a bucket (absent: none) as a T.
func forEachProto[T proto.Message](b *Backend, bucket []byte, newT func() T, fn func(T) error) error {
	return b.view(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucket)
		if bk == nil {
			return nil
		}
		return bk.ForEach(func(k, v []byte) error {
			m := newT()
			if err := proto.Unmarshal(v, m); err != nil {
				return fmt.Errorf("%w: %s %q: %v", ErrCorrupt, bucket, k, err)
			}
			return fn(m)
		})
	})
}

package etcdbackend

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/authpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/server/v3/lease/leasepb"
	"google.golang.org/protobuf/proto"
)

// Writer writes a new etcd backend file. Writes go to bbolt transactions
// of at most txBytes each, so memory stays bounded whatever the size of
// the data; nothing is synced until Close.
type Writer struct {
	db      *bolt.DB
	tx      *bolt.Tx
	pending int
	key     []byte
	lastKey []byte // the last version key written in this transaction
	inOrder bool   // every version key of this transaction came in order
}

// txBytes bounds what one bbolt transaction holds before it is committed
// (bbolt keeps a transaction's dirty pages in memory).
const txBytes = 32 << 20

// Create makes the backend file at path, which must not exist, with every
// bucket etcd v3.7 has.
func Create(path string) (*Writer, error) {
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("%s already exists", path)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true, NoFreelistSync: true})
	if err != nil {
		return nil, err
	}
	w := &Writer{db: db}
	if err := w.begin(); err != nil {
		db.Close()
		return nil, err
	}
	for _, name := range allBuckets {
		if _, err := w.tx.CreateBucketIfNotExists(name); err != nil {
			w.Abort()
			return nil, err
		}
	}
	return w, nil
}

func (w *Writer) begin() (err error) {
	w.tx, err = w.db.Begin(true)
	w.pending, w.lastKey, w.inOrder = 0, w.lastKey[:0], true
	return err
}

// commit commits the transaction. Versions written in revision order fill
// pages to 90%, as etcd's sequential puts do (half otherwise: bbolt's
// default for random inserts, which leaves room for the next ones).
func (w *Writer) commit() error {
	if w.inOrder {
		w.tx.Bucket(bucketKey).FillPercent = 0.9
	}
	return w.tx.Commit()
}

// put writes one entry and commits the transaction once it holds txBytes.
func (w *Writer) put(bucket, key, value []byte) error {
	if err := w.tx.Bucket(bucket).Put(key, value); err != nil {
		return err
	}
	w.pending += len(key) + len(value)
	if w.pending < txBytes {
		return nil
	}
	if err := w.commit(); err != nil {
		return err
	}
	return w.begin()
}

// PutVersion writes one version of a key at main.sub (a tombstone: the
// key's deletion, stored as etcd stores it, with only the key).
func (w *Writer) PutVersion(main, sub int64, tombstone bool, kv *mvccpb.KeyValue) error {
	if tombstone {
		kv = &mvccpb.KeyValue{Key: kv.Key}
	} else {
		// etcd's record carries its own mod revision.
		kv = &mvccpb.KeyValue{Key: kv.Key, CreateRevision: kv.CreateRevision, ModRevision: main,
			Version: kv.Version, Value: kv.Value, Lease: kv.Lease}
	}
	v, err := proto.Marshal(kv)
	if err != nil {
		return err
	}
	w.key = appendRevKey(w.key[:0], main, sub, tombstone)
	if bytes.Compare(w.key, w.lastKey) <= 0 {
		w.inOrder = false
	}
	w.lastKey = append(w.lastKey[:0], w.key...)
	return w.put(bucketKey, w.key, v)
}

// PutLease writes a lease record.
func (w *Writer) PutLease(l *leasepb.Lease) error {
	return w.putProto(bucketLease, binary.BigEndian.AppendUint64(nil, uint64(l.ID)), l)
}

// PutUser writes a user record.
func (w *Writer) PutUser(u *authpb.User) error { return w.putProto(bucketAuthUsers, u.Name, u) }

// PutRole writes a role record.
func (w *Writer) PutRole(r *authpb.Role) error { return w.putProto(bucketAuthRoles, r.Name, r) }

func (w *Writer) putProto(bucket, key []byte, m proto.Message) error {
	v, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return w.put(bucket, key, v)
}

// SetMeta records m (its StorageVersion is written as given, and the
// cluster version with it).
func (w *Writer) SetMeta(m Meta) error {
	u64 := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	puts := []struct{ bucket, key, value []byte }{
		{bucketMeta, metaConsistentIndex, u64(m.ConsistentIndex)},
		{bucketMeta, metaTerm, u64(m.Term)},
		{bucketMeta, metaStorageVersion, []byte(m.StorageVersion)},
		{bucketCluster, clusterVersionKey, []byte(m.StorageVersion)},
		{bucketAuth, authEnabledKey, []byte{boolByte(m.AuthEnabled)}},
		{bucketAuth, authRevisionKey, u64(max(m.AuthRevision, 1))},
	}
	if m.ScheduledCompact >= 0 {
		puts = append(puts, struct{ bucket, key, value []byte }{bucketMeta, metaScheduledCompact, appendRevKey(nil, m.ScheduledCompact, 0, false)})
	}
	if m.FinishedCompact >= 0 {
		puts = append(puts, struct{ bucket, key, value []byte }{bucketMeta, metaFinishedCompact, appendRevKey(nil, m.FinishedCompact, 0, false)})
	}
	for _, p := range puts {
		if err := w.put(p.bucket, p.key, p.value); err != nil {
			return err
		}
	}
	return nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// Close commits what is pending, syncs the file and closes it.
func (w *Writer) Close() error {
	err := w.commit()
	if err == nil {
		err = w.db.Sync()
	}
	return errors.Join(err, w.db.Close())
}

// Abort drops what is pending and closes the file (the caller removes it).
func (w *Writer) Abort() {
	_ = w.tx.Rollback()
	_ = w.db.Close()
}

package storeactor

import (
	"encoding/binary"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Leases are part of the replicated state machine: a grant, a revoke (and
// the deletes of every key attached to the lease, in one revision) and the
// attachment of keys by puts are applied here, in the same pebble batch as
// the keys, so they are atomic and survive restarts. Liveness — expiry,
// keep-alive, deciding to revoke — belongs to the lease actor, which this
// actor tells about grants and revokes (LeasesApplied).
//
// Attachments are indexed in pebble ('a' id enc(key)), not in memory: a
// revoke or a TimeToLive with keys walks one prefix, and memory does not
// grow with the number of attached keys.
//
// A lease record is 'e' id -> granted TTL (8 bytes), followed by the
// remaining TTL of its last checkpoint (8 more) when it has one: etcd's
// leasepb.Lease{TTL, RemainingTTL}. A record without a checkpoint keeps
// the 8-byte form every earlier version wrote, so both read alike.

// MaxLeaseTTL is etcd's largest lease TTL, in seconds.
const MaxLeaseTTL = 9000000000

// LeasesApplied tells the lease actor what an apply batch granted and
// revoked. Like Committed, it is sent after the batch is committed and
// before its clients are answered.
type LeasesApplied struct {
	Granted []LeaseRecord
	Revoked []int64
	// Checkpointed are the leases a LeaseCheckpoint changed, as recorded
	// now (Remaining 0: a renewal cleared the checkpoint).
	Checkpointed []LeaseRecord
	// Reset: the store's leases were replaced (a snapshot from the leader
	// was installed); Granted is all of them, and any other is gone.
	Reset bool
}

// LeaseRecord is a lease as the state machine knows it.
type LeaseRecord struct {
	ID  int64
	TTL int64 // granted TTL in seconds, after the minimum was applied
	// Remaining is the remaining TTL in seconds the leader last
	// checkpointed (etcd's RemainingTTL): a newly promoted leader counts
	// down from it instead of from TTL. 0: none.
	Remaining int64
}

// encodeLease is a lease record's value: the 8-byte form without a
// checkpoint, 16 bytes with one.
func encodeLease(ttl, remaining int64) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(ttl))
	if remaining > 0 {
		v = binary.BigEndian.AppendUint64(v, uint64(remaining))
	}
	return v
}

// decodeLease reads a lease record's value, in either form.
func decodeLease(id int64, v []byte) (LeaseRecord, error) {
	r := LeaseRecord{ID: id}
	switch len(v) {
	case 16:
		r.Remaining = int64(binary.BigEndian.Uint64(v[8:]))
		fallthrough
	case 8:
		r.TTL = int64(binary.BigEndian.Uint64(v))
		return r, nil
	}
	return r, errCorruptRecord
}

func leaseKey(id int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixLease}, uint64(id))
}

func attachPrefix(id int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixAttach}, uint64(id))
}

func attachKey(id int64, key []byte) []byte {
	return appendEncodedKey(attachPrefix(id), key)
}

// leaseRecord reads lease id's record.
func leaseRecord(r pebble.Reader, id int64) (LeaseRecord, bool, error) {
	v, ok, err := getValue(r, leaseKey(id))
	if err != nil || !ok {
		return LeaseRecord{ID: id}, false, err
	}
	rec, err := decodeLease(id, v)
	return rec, err == nil, err
}

// leaseExists is for the Store's own reads (see mustRead).
func leaseExists(r pebble.Reader, id int64) bool {
	_, ok, err := leaseRecord(r, id)
	must(err)
	return ok
}

// attach moves key's attachment from lease from to lease to (0: none).
func (tw *writeTxn) attach(key []byte, from, to int64) {
	if from == to {
		return
	}
	if from != 0 {
		must(tw.w.Delete(attachKey(from, key), nil))
	}
	if to != 0 {
		must(tw.w.Set(attachKey(to, key), nil, nil))
	}
}

// applyLeaseGrant records a lease as etcd's lessor grants it: a TTL above
// MaxLeaseTTL is refused, one below minTTL is raised to it.
func applyLeaseGrant(b *pebble.Batch, r *pb.LeaseGrantRequest, minTTL, rev int64) (*pb.LeaseGrantResponse, *LeaseRecord, error) {
	switch {
	case r.ID == 0:
		return nil, nil, rpctypes.ErrGRPCLeaseNotFound
	case r.TTL > MaxLeaseTTL:
		return nil, nil, rpctypes.ErrGRPCLeaseTTLTooLarge
	case leaseExists(b, r.ID):
		return nil, nil, rpctypes.ErrGRPCLeaseExist
	}
	ttl := max(r.TTL, minTTL)
	must(b.Set(leaseKey(r.ID), encodeLease(ttl, 0), nil))
	return &pb.LeaseGrantResponse{Header: &pb.ResponseHeader{Revision: rev}, ID: r.ID, TTL: ttl},
		&LeaseRecord{ID: r.ID, TTL: ttl}, nil
}

// applyLeaseCheckpoint records each checkpoint's remaining TTL in its
// lease's record, as etcd's lessor does with checkpoints persisted (which
// etcd 3.7 always does: its cluster version is at least 3.6); a remaining
// TTL of 0 (a renewal) clears it. A checkpoint of a lease that is gone
// is ignored, as etcd ignores it. It returns the records changed.
func applyLeaseCheckpoint(b *pebble.Batch, r *pb.LeaseCheckpointRequest, rev int64) (*pb.LeaseCheckpointResponse, []LeaseRecord) {
	var changed []LeaseRecord
	for _, c := range r.Checkpoints {
		rec, ok, err := leaseRecord(b, c.ID)
		must(err)
		if !ok {
			continue
		}
		rec.Remaining = max(c.Remaining_TTL, 0)
		must(b.Set(leaseKey(c.ID), encodeLease(rec.TTL, rec.Remaining), nil))
		changed = append(changed, rec)
	}
	return &pb.LeaseCheckpointResponse{Header: &pb.ResponseHeader{Revision: rev}}, changed
}

// applyLeaseRevoke deletes every key attached to the lease (in key order,
// one revision) and the lease.
func (tw *writeTxn) applyLeaseRevoke(r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	if !leaseExists(tw.r, r.ID) {
		return nil, rpctypes.ErrGRPCLeaseNotFound
	}
	for _, k := range mustRead(attachedKeys(tw.r, r.ID)) {
		tw.ops.del(1) // etcd's lessor deletes key by key, in one txn
		tw.deleteRange(k, nil)
	}
	must(tw.w.Delete(leaseKey(r.ID), nil))
	return &pb.LeaseRevokeResponse{Header: &pb.ResponseHeader{Revision: tw.rev()}}, nil
}

// attachedKeys lists the keys attached to lease id, in key order.
func attachedKeys(r pebble.Reader, id int64) ([][]byte, error) {
	p := attachPrefix(id)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var keys [][]byte
	for ok := it.First(); ok; ok = it.Next() {
		keys = append(keys, decodeUserKey(it.Key()[len(p):]))
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	return keys, nil
}

// prefixEnd is the smallest key greater than every key starting with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xFF {
			end[i]++
			return end[:i+1]
		}
	}
	panic("storeactor: no key follows an all-0xFF prefix")
}

// LeaseKeys lists the keys attached to lease id, in key order.
func (r *Reader) LeaseKeys(id int64) ([][]byte, error) {
	keys, err := attachedKeys(r.db, id)
	return keys, r.readError("lease-keys", err)
}

// Lease reads one lease's record, and whether there is one.
func (r *Reader) Lease(id int64) (LeaseRecord, bool, error) {
	rec, ok, err := leaseRecord(r.db, id)
	return rec, ok, r.readError("lease", err)
}

// Leases lists every lease.
func (r *Reader) Leases() ([]LeaseRecord, error) {
	ls, err := listLeases(r.db)
	return ls, r.readError("leases", err)
}

func listLeases(r pebble.Reader) ([]LeaseRecord, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixLease}, UpperBound: []byte{prefixLease + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []LeaseRecord
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != 9 {
			return nil, errCorruptRecord
		}
		rec, err := decodeLease(int64(binary.BigEndian.Uint64(k[1:])), it.Value())
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	return out, nil
}

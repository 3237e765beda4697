package node

import (
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"sort"

	"github.com/cockroachdb/pebble/v2"

	"github.com/metastore/metastore/storeactor"
)

// MemberID is etcd's member id for a member of a new cluster (see
// storeactor.MemberID; the token is --initial-cluster-token).
func MemberID(peerURLs []string, token string) uint64 { return storeactor.MemberID(peerURLs, token) }

// ClusterID is etcd's cluster id: the first 8 bytes of sha1 over the sorted
// member ids.
func ClusterID(members []uint64) uint64 {
	ids := append([]uint64(nil), members...)
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	b := make([]byte, 8*len(ids))
	for i, id := range ids {
		binary.BigEndian.PutUint64(b[8*i:], id)
	}
	h := sha1.Sum(b)
	return binary.BigEndian.Uint64(h[:8])
}

// keyIdentity holds member id (8) and cluster id (8), written once when a
// data dir is created: a restarted member keeps its identity whatever the
// initial-cluster flags say (as etcd ignores them on restart).
var keyIdentity = []byte("nidentity")

func loadOrSaveIdentity(db *pebble.DB, member, cluster uint64) (uint64, uint64, error) {
	b, closer, err := db.Get(keyIdentity)
	if err == nil {
		defer closer.Close()
		if len(b) != 16 {
			return 0, 0, errors.New("node: corrupt identity record")
		}
		return binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:]), nil
	}
	if !errors.Is(err, pebble.ErrNotFound) {
		return 0, 0, err
	}
	v := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, member), cluster)
	return member, cluster, db.Set(keyIdentity, v, pebble.Sync)
}

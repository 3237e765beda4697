package node

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Helpers for `metastoreutl snapshot restore`, which gives a restored data
// dir the identity a fresh start with the same flags would give it.

// ParseInitialCluster reads an --initial-cluster value,
// "name1=url1,name1=url2,name2=url3", into each name's peer URLs.
func ParseInitialCluster(s string) (map[string][]string, error) {
	m := map[string][]string{}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("invalid --initial-cluster entry %q (want name=peerURL)", p)
		}
		m[k] = append(m[k], v)
	}
	return m, nil
}

// Identity is what a new member is known by.
type Identity struct {
	MemberID  uint64
	ClusterID uint64
	Voters    []uint64     // every member of the initial cluster, this one included
	Members   []*pb.Member // the same, with names and peer URLs
}

// NewIdentity computes the identity a member starting a new cluster gets
// from --name, --initial-cluster, --initial-advertise-peer-urls and
// --initial-cluster-token: the same ids Start computes (so, etcd's). As
// etcd's bootstrap check does, it wants this member's advertised peer URLs
// to be the ones --initial-cluster gives its name.
func NewIdentity(name string, cluster map[string][]string, advertisePeerURLs []string, token string) (Identity, error) {
	members, self, err := initialMembers(Config{Name: name, InitialCluster: cluster, InitialClusterToken: token})
	if err != nil {
		return Identity{}, err
	}
	voters := memberIDs(members)
	if !sameURLs(cluster[name], advertisePeerURLs) {
		return Identity{}, fmt.Errorf("--initial-cluster has %s=%s but missing from --initial-advertise-peer-urls=%s",
			name, strings.Join(cluster[name], ","), strings.Join(advertisePeerURLs, ","))
	}
	sort.Slice(voters, func(i, j int) bool { return voters[i] < voters[j] })
	return Identity{MemberID: self, ClusterID: ClusterID(voters), Voters: voters, Members: members}, nil
}

func sameURLs(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// WriteIdentity records id as the data dir's identity (replacing the one a
// restored DB was copied with); Start then keeps it whatever its flags say.
func WriteIdentity(w pebble.Writer, id Identity) error {
	v := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, id.MemberID), id.ClusterID)
	return w.Set(keyIdentity, v, nil)
}

package node

import (
	"strings"
	"testing"

	"github.com/metastore/metastore/storeactor"
)

// etcd's defaults give etcd's ids (the ones `etcdutl snapshot restore`
// logs: member 8e9e05c52164694d, cluster cdf818194e3a8c32), and the
// identity written is the one a start of the data dir then keeps.
func TestNewIdentityAsFreshStart(t *testing.T) {
	cluster, err := ParseInitialCluster("default=http://localhost:2380")
	if err != nil {
		t.Fatal(err)
	}
	id, err := NewIdentity("default", cluster, []string{"http://localhost:2380"}, "etcd-cluster")
	if err != nil {
		t.Fatal(err)
	}
	if id.MemberID != 0x8e9e05c52164694d || id.ClusterID != 0xcdf818194e3a8c32 || len(id.Voters) != 1 || id.Voters[0] != id.MemberID {
		t.Fatalf("identity %x/%x voters %x", id.MemberID, id.ClusterID, id.Voters)
	}
	members, self, err := initialMembers(Config{Name: "default", InitialCluster: cluster, InitialClusterToken: "etcd-cluster"})
	if err != nil || self != id.MemberID || ClusterID(memberIDs(members)) != id.ClusterID {
		t.Fatalf("Start would compute %x/%x (%v)", self, ClusterID(memberIDs(members)), err)
	}

	db, err := storeactor.OpenPebble("/db", true)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, _, err := loadOrSaveIdentity(db, 1, 2); err != nil { // the identity a snapshot was copied with
		t.Fatal(err)
	}
	if err := WriteIdentity(db, id); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	m, c, err := loadOrSaveIdentity(db, 3, 4)
	if err != nil || m != id.MemberID || c != id.ClusterID {
		t.Fatalf("start keeps %x/%x (%v), want %x/%x", m, c, err, id.MemberID, id.ClusterID)
	}
}

func TestNewIdentityRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, cluster, adv, want string
	}{
		{"x", "default=http://localhost:2380", "http://localhost:2380", `couldn't find local name "x" in the initial cluster configuration`},
		{"default", "default=http://localhost:2380", "http://1.2.3.4:2380", "--initial-cluster has default=http://localhost:2380 but missing from --initial-advertise-peer-urls=http://1.2.3.4:2380"},
		{"a", "a=http://a:2380,b=http://a:2380", "http://a:2380", "duplicate URL"},
	} {
		cluster, err := ParseInitialCluster(tc.cluster)
		if err != nil {
			t.Fatal(err)
		}
		_, err = NewIdentity(tc.name, cluster, strings.Split(tc.adv, ","), "tok")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s / %s / %s: error %v, want %q", tc.name, tc.cluster, tc.adv, err, tc.want)
		}
	}
	if _, err := ParseInitialCluster("novalue"); err == nil {
		t.Error("entry without = accepted")
	}
}

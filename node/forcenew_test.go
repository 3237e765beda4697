package node_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/metastore/metastore/node"
	"github.com/metastore/metastore/node/nodetest"
)

// Issue 20: --force-new-cluster, etcd's disaster recovery, on in-process
// members whose data lives on an FS of their own that outlives a stop.

// fmember is a member whose data survives its restarts.
type fmember struct {
	t    *testing.T
	name string
	id   uint64
	cfg  node.Config
	n    *node.Node
	cli  *clientv3.Client
}

// memberConfig is a member of a cluster with initial, on its own data FS.
func memberConfig(name string, initial map[string][]string, state, token string) node.Config {
	cfg := nodetest.Member(name, initial, token)
	cfg.FS, cfg.InitialClusterState = vfs.NewMem(), state
	return cfg
}

// start starts m from its config (and data) and waits until it serves.
func (m *fmember) start() {
	m.t.Helper()
	m.n = nodetest.Start(m.t, m.cfg)
	m.cli = nodetest.Client(m.t, m.n)
}

func (m *fmember) stop() {
	m.cli.Close()
	m.n.Stop()
}

// newForceCluster starts three new members (names m1..m3).
func newForceCluster(t *testing.T, token string, adjust func(name string, cfg *node.Config)) []*fmember {
	t.Helper()
	names := []string{"m1", "m2", "m3"}
	initial := nodetest.Peers(t, names...)
	var ms []*fmember
	var cfgs []node.Config
	for _, name := range names {
		m := &fmember{t: t, name: name, id: node.MemberID(initial[name], token), cfg: memberConfig(name, initial, "new", token)}
		if adjust != nil {
			adjust(name, &m.cfg)
		}
		ms, cfgs = append(ms, m), append(cfgs, m.cfg)
	}
	for i, n := range nodetest.StartAll(t, cfgs...) {
		ms[i].n, ms[i].cli = n, nodetest.Client(t, n)
	}
	return ms
}

// memberIDs lists the members m knows, and the cluster id it answers with.
func memberIDs(t *testing.T, m *fmember) (ids []uint64, cluster uint64, learners int) {
	t.Helper()
	ctx, cancel := ctx3()
	defer cancel()
	r, err := m.cli.MemberList(ctx)
	if err != nil {
		t.Fatalf("member list on %s: %v", m.name, err)
	}
	for _, mm := range r.Members {
		ids = append(ids, mm.ID)
		if mm.IsLearner {
			learners++
		}
	}
	slices.Sort(ids)
	return ids, r.Header.ClusterId, learners
}

// everything is every key m holds, read linearizably (serializably: its
// own applied state), and the revision of the read.
func everything(t *testing.T, m *fmember, serializable bool) ([]*mvccpb.KeyValue, int64) {
	t.Helper()
	ctx, cancel := ctx3()
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	r, err := m.cli.Get(ctx, "", opts...)
	if err != nil {
		t.Fatalf("read everything on %s: %v", m.name, err)
	}
	return r.Kvs, r.Header.Revision
}

func sameKVs(a, b []*mvccpb.KeyValue) bool {
	return slices.EqualFunc(a, b, func(x, y *mvccpb.KeyValue) bool {
		return string(x.Key) == string(y.Key) && string(x.Value) == string(y.Value) && x.CreateRevision == y.CreateRevision &&
			x.ModRevision == y.ModRevision && x.Version == y.Version && x.Lease == y.Lease
	})
}

// waitFor polls cond (every 20 ms) until it holds or within passes.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A three-member cluster loses two members for good. The survivor,
// restarted with ForceNewCluster, leads alone in the same cluster with
// every key at the same revisions, its leases and users; its member list
// is itself. Two new members added with MemberAdd catch up and the three
// commit together; the survivor restarted without the flag is still one
// of the three, with all the data; an old member coming back is told it
// was removed.
func TestForceNewClusterRecoversFromOneSurvivor(t *testing.T) {
	const token = "force-new-cluster"
	ms := newForceCluster(t, token, nil)
	survivor := ms[0]
	_, clusterID, _ := memberIDs(t, survivor)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cli := survivor.cli
	for i := 0; i < 20; i++ {
		if _, err := cli.Put(ctx, fmt.Sprintf("k/%02d", i), fmt.Sprintf("v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Put(ctx, "k/00", "again"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx, "k/01"); err != nil {
		t.Fatal(err)
	}
	lease, err := cli.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "leased", "x", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	for _, step := range []func() error{
		func() error { _, err := cli.RoleAdd(ctx, "reader"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "reader", "k/", clientv3.GetPrefixRangeEnd("k/"), clientv3.PermissionType(clientv3.PermRead))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, "alice", "secret"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "alice", "reader"); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	before, rev := everything(t, survivor, false)
	for _, m := range ms {
		m.stop()
	}

	// The survivor alone, with the flag.
	core, logs := observer.New(zap.InfoLevel)
	survivor.cfg.ForceNewCluster = true
	survivor.cfg.Logger = zap.New(core)
	survivor.start()
	if st, err := survivor.cli.Status(ctx, survivor.n.ClientAddrs()[0]); err != nil || st.Leader != survivor.id {
		t.Fatalf("status of the forced survivor: %+v (%v), want itself %x as leader", st, err, survivor.id)
	}
	if ids, cid, _ := memberIDs(t, survivor); !slices.Equal(ids, []uint64{survivor.id}) || cid != clusterID {
		t.Fatalf("members %x of cluster %x, want only %x of cluster %x", ids, cid, survivor.id, clusterID)
	}
	after, afterRev := everything(t, survivor, false)
	if !sameKVs(before, after) || afterRev != rev {
		t.Fatalf("after the forced restart: %d keys at revision %d, was %d at %d:\n%v\nwas\n%v", len(after), afterRev, len(before), rev, after, before)
	}
	ttl, err := survivor.cli.TimeToLive(ctx, lease.ID, clientv3.WithAttachedKeys())
	if err != nil || ttl.TTL <= 0 || len(ttl.Keys) != 1 || string(ttl.Keys[0]) != "leased" {
		t.Fatalf("lease after the forced restart: %+v (%v)", ttl, err)
	}
	if u, err := survivor.cli.UserGet(ctx, "alice"); err != nil || !slices.Equal(u.Roles, []string{"reader"}) {
		t.Fatalf("user after the forced restart: %+v (%v)", u, err)
	}
	if r, err := survivor.cli.RoleGet(ctx, "reader"); err != nil || len(r.Perm) != 1 || string(r.Perm[0].Key) != "k/" {
		t.Fatalf("role after the forced restart: %+v (%v)", r, err)
	}
	removed := []string{fmt.Sprintf("%x", min(ms[1].id, ms[2].id)), fmt.Sprintf("%x", max(ms[1].id, ms[2].id))}
	forcing := logs.FilterMessage("forcing restart member").All()
	if len(forcing) != 1 {
		t.Fatal("no \"forcing restart member\" logged")
	}
	if f := forcing[0].ContextMap(); f["cluster-id"] != fmt.Sprintf("%x", clusterID) || f["local-member-id"] != fmt.Sprintf("%x", survivor.id) ||
		fmt.Sprint(f["removed-member-ids"]) != fmt.Sprint(removed) {
		t.Errorf("forcing restart member logged with %v, want cluster %x, member %x, removed %v", f, clusterID, survivor.id, removed)
	}

	// Grown again: two new members, one at a time (each must be started
	// and connected before the next voter can be added).
	peers := map[string][]string{survivor.name: survivor.cfg.InitialAdvertisePeerURLs}
	grown := []*fmember{survivor}
	for _, name := range []string{"m4", "m5"} {
		peers[name] = []string{nodetest.FreeURL(t)}
		// etcd's strict reconfig check also wants the survivor connected to
		// the member added before for a health interval (5 s): retried.
		var added *clientv3.MemberAddResponse
		waitFor(t, "member add "+name, 10*time.Second, func() bool {
			added, err = survivor.cli.MemberAdd(ctx, peers[name])
			if err != nil && !errors.Is(err, rpctypes.ErrUnhealthy) {
				t.Fatalf("member add %s: %v", name, err)
			}
			return err == nil
		})
		// The new member fetches the member list from the first peer that
		// answers (as etcd does) and refuses to start if that peer has not
		// yet applied the MemberAdd: wait until every running member has.
		for _, g := range grown {
			waitFor(t, g.name+" lists "+name, 10*time.Second, func() bool {
				r, err := g.cli.MemberList(ctx, clientv3.WithSerializable())
				return err == nil && slices.ContainsFunc(r.Members, func(mm *etcdserverpb.Member) bool { return mm.ID == added.Member.ID })
			})
		}
		m := &fmember{t: t, name: name, id: added.Member.ID, cfg: memberConfig(name, clonePeers(peers), "existing", token)}
		m.start()
		grown = append(grown, m)
		// Started, in etcd's sense, once it has published its name: only
		// then does it count towards the quorum the next MemberAdd checks.
		waitFor(t, name+" published", 10*time.Second, func() bool {
			r, err := survivor.cli.MemberList(ctx)
			return err == nil && slices.ContainsFunc(r.Members, func(mm *etcdserverpb.Member) bool { return mm.ID == m.id && mm.Name == name })
		})
	}
	for _, m := range grown[1:] {
		waitFor(t, m.name+" has every key", 10*time.Second, func() bool {
			kvs, r := everything(t, m, true)
			return r >= rev && sameKVs(before, kvs)
		})
	}
	if _, err := grown[2].cli.Put(ctx, "after", "1"); err != nil {
		t.Fatalf("put with three voters: %v", err)
	}
	if ids, _, learners := memberIDs(t, grown[1]); len(ids) != 3 || learners != 0 {
		t.Fatalf("members %x (%d learners), want three voters", ids, learners)
	}

	// The flag removed: the survivor restarts as one of the three.
	survivor.stop()
	survivor.cfg.ForceNewCluster = false
	survivor.start()
	if ids, cid, _ := memberIDs(t, survivor); len(ids) != 3 || cid != clusterID {
		t.Fatalf("after a restart without the flag: members %x of cluster %x", ids, cid)
	}
	final, _ := everything(t, survivor, false)
	if len(final) != len(before)+1 || !sameKVs(before, slices.DeleteFunc(slices.Clone(final), func(kv *mvccpb.KeyValue) bool { return string(kv.Key) == "after" })) {
		t.Fatalf("after a restart without the flag: %v, want %v and \"after\"", final, before)
	}
	if _, err := survivor.cli.Put(ctx, "after-restart", "1"); err != nil {
		t.Fatalf("put after the restart without the flag: %v", err)
	}

	// An old member that comes back with its data is not let in.
	old := ms[1]
	n, err := node.Start(old.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	select {
	case <-n.Removed():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s, removed by the forced restart, was not told so", old.name)
	}
}

func clonePeers(m map[string][]string) map[string][]string {
	out := make(map[string][]string, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}

// The flag on a member without data is ignored, as etcd ignores it
// without a WAL: the new cluster bootstraps with all its members.
func TestForceNewClusterIgnoredWithoutData(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	ms := newForceCluster(t, "force-new-cluster-fresh", func(name string, cfg *node.Config) {
		if name == "m1" {
			cfg.ForceNewCluster, cfg.Logger = true, zap.New(core)
		}
	})
	if ids, _, _ := memberIDs(t, ms[0]); len(ids) != 3 {
		t.Fatalf("members %x, want the three of --initial-cluster", ids)
	}
	ctx, cancel := ctx3()
	defer cancel()
	if _, err := ms[0].cli.Put(ctx, "a", "1"); err != nil {
		t.Fatal(err)
	}
	if f, i := logs.FilterMessage("forcing restart member").Len(), logs.FilterMessageSnippet("ignoring --force-new-cluster").Len(); f != 0 || i != 1 {
		t.Errorf("logged %d \"forcing restart member\" and %d \"ignoring --force-new-cluster\", want 0 and 1", f, i)
	}
}

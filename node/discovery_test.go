package node_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/discovery"
	"github.com/metastore/metastore/node"
	"github.com/metastore/metastore/node/nodetest"
)

// discoveryService starts a one-member MetaStore to serve as the
// discovery service and puts the cluster size for token.
func discoveryService(t *testing.T, token string, size int) *clientv3.Client {
	t.Helper()
	cli := nodetest.Client(t, startLone(t, vfs.NewMem()))
	ctx, cancel := ctx3()
	defer cancel()
	if _, err := cli.Put(ctx, discovery.SizeKey(token), fmt.Sprint(size)); err != nil {
		t.Fatal(err)
	}
	return cli
}

// discoveringConfig is a member that bootstraps through the service: no
// --initial-cluster, a data dir of its own on disk.
func discoveringConfig(t *testing.T, name string, service *clientv3.Client, token string) node.Config {
	cfg := nodetest.Config(name, t.TempDir())
	cfg.ListenPeerURLs = []string{nodetest.FreeURL(t)}
	cfg.InitialAdvertisePeerURLs = cfg.ListenPeerURLs
	cfg.Discovery = &discovery.Config{Endpoints: service.Endpoints(), Token: token, InsecureTransport: true, MaxRetries: 1}
	cfg.StrictReconfigCheck = true
	return cfg
}

// memberList is what `etcdctl member list` shows a client of cli: ids,
// names and peer URLs, in id order, and the cluster id.
func memberList(t *testing.T, cli *clientv3.Client) (uint64, []string) {
	t.Helper()
	ctx, cancel := ctx3()
	defer cancel()
	resp, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range resp.Members {
		out = append(out, fmt.Sprintf("%x %s %v", m.ID, m.Name, m.PeerURLs))
	}
	slices.Sort(out)
	return resp.Header.ClusterId, out
}

// Three members started with the same token and no --initial-cluster make
// one cluster: each lists the same three members (not itself alone). A
// fourth member with the token is refused with etcd's full-cluster error
// and does not start.
func TestDiscoveredMembersFormOneCluster(t *testing.T) {
	const token = "three"
	service := discoveryService(t, token, 3)
	cfgs := make([]node.Config, 3)
	for i := range cfgs {
		cfgs[i] = discoveringConfig(t, fmt.Sprintf("m%d", i+1), service, token)
	}
	var clis []*clientv3.Client
	for _, n := range nodetest.StartAll(t, cfgs...) {
		clis = append(clis, nodetest.Client(t, n))
	}
	var want []string
	for _, cfg := range cfgs {
		id := node.MemberID(cfg.InitialAdvertisePeerURLs, token)
		want = append(want, fmt.Sprintf("%x %s %v", id, cfg.Name, cfg.InitialAdvertisePeerURLs))
	}
	slices.Sort(want)
	firstCluster, _ := memberList(t, clis[0])
	for i, cli := range clis {
		cluster, got := memberList(t, cli)
		if !slices.Equal(got, want) || cluster != firstCluster {
			t.Errorf("m%d lists cluster %x members %v; want cluster %x members %v", i+1, cluster, got, firstCluster, want)
		}
	}

	fourth := discoveringConfig(t, "m4", service, token)
	n, err := node.Start(fourth)
	if err == nil {
		n.Stop()
	}
	if !errors.Is(err, discovery.ErrFullCluster) {
		t.Fatalf("a fourth member: err = %v, want %v", err, discovery.ErrFullCluster)
	}
}

// A member that has started once keeps its cluster: restarted, it skips
// discovery (its token's keys may be gone from the service, as here) and
// comes back as the same member of the same cluster.
func TestRestartedMemberSkipsDiscovery(t *testing.T) {
	const token = "restart"
	service := discoveryService(t, token, 1)
	cfg := discoveringConfig(t, "m1", service, token)
	n := nodetest.Start(t, cfg)
	cluster, members := memberList(t, nodetest.Client(t, n))
	n.Stop()
	ctx, cancel := ctx3()
	defer cancel()
	if _, err := service.Delete(ctx, "/_etcd/registry/"+token+"/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	if c, ms := memberList(t, nodetest.Client(t, nodetest.Start(t, cfg))); c != cluster || !slices.Equal(ms, members) {
		t.Errorf("after the restart: cluster %x members %v; before: cluster %x members %v", c, ms, cluster, members)
	}
}

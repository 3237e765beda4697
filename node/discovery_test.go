package node_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/metastore/metastore/discovery"
	"github.com/metastore/metastore/node"
)

// discoveryService starts a one-member MetaStore to serve as the
// discovery service and puts the cluster size for token.
func discoveryService(t *testing.T, token string, size int) *clientv3.Client {
	t.Helper()
	cli := lonesClient(t, startLone(t, vfs.NewMem()))
	ctx, cancel := ctx3()
	defer cancel()
	if _, err := cli.Put(ctx, discovery.SizeKey(token), fmt.Sprint(size)); err != nil {
		t.Fatal(err)
	}
	return cli
}

func lonesClient(t *testing.T, n *node.Node) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: n.ClientAddrs(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// discoveringConfig is a member that bootstraps through the service: no
// --initial-cluster, a data dir of its own on disk.
func discoveringConfig(t *testing.T, name string, service *clientv3.Client, token string) node.Config {
	peer := []string{fmt.Sprintf("http://127.0.0.1:%d", freePort(t))}
	client := []string{fmt.Sprintf("http://127.0.0.1:%d", freePort(t))}
	return node.Config{
		Name: name, DataDir: t.TempDir(),
		ListenClientURLs: client, AdvertiseClientURLs: client,
		ListenPeerURLs: peer, InitialAdvertisePeerURLs: peer, InitialClusterState: "new",
		Discovery:     &discovery.Config{Endpoints: service.Endpoints(), Token: token, InsecureTransport: true, MaxRetries: 1},
		SnapshotCount: 10000, SnapshotCatchUpEntries: 5000, StrictReconfigCheck: true, MaxLearners: 1,
		HeartbeatInterval: heartbeat, ElectionTimeout: election,
		QuotaBackendBytes: 2 << 30, MaxRequestBytes: 1.5 * 1024 * 1024, MaxTxnOps: 128,
		WatchProgressNotifyInterval: 10 * time.Minute, BcryptCost: 4, AuthTokenTTL: 300 * time.Second,
		Logger: zap.NewNop(),
	}
}

func startServing(t *testing.T, cfg node.Config) (*node.Node, *clientv3.Client) {
	t.Helper()
	n := startReady(t, cfg)
	return n, lonesClient(t, n)
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
	clis := make([]*clientv3.Client, 3)
	var wg sync.WaitGroup
	for i := range cfgs {
		wg.Add(1)
		go func() { // each start returns only once all three registered
			defer wg.Done()
			_, clis[i] = startServing(t, cfgs[i])
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
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
	n, cli := startServing(t, cfg)
	cluster, members := memberList(t, cli)
	n.Stop()
	ctx, cancel := ctx3()
	defer cancel()
	if _, err := service.Delete(ctx, "/_etcd/registry/"+token+"/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	_, cli = startServing(t, cfg)
	if c, ms := memberList(t, cli); c != cluster || !slices.Equal(ms, members) {
		t.Errorf("after the restart: cluster %x members %v; before: cluster %x members %v", c, ms, cluster, members)
	}
}

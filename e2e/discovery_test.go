package e2e

import (
	"context"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcd v3 discovery (--discovery-token, --discovery-endpoints, no
// --initial-cluster): members register with an etcd-API service and
// bootstrap together, whichever server the service and the members are.

// fullClusterError is what etcd says, and exits 1 on, when a member comes
// after the cluster's size members registered.
const fullClusterError = "failed to join discovery cluster (discovery: cluster is full)"

// putSize sets the size of token's cluster in the discovery service.
func putSize(t *testing.T, cli *clientv3.Client, token string, size int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "/_etcd/registry/"+token+"/_config/size", fmt.Sprint(size)); err != nil {
		t.Fatal(err)
	}
}

// registryKeys dumps token's keys in the discovery service.
func registryKeys(t *testing.T, cli *clientv3.Client, token string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/_etcd/registry/"+token+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, kv := range resp.Kvs {
		keys[string(kv.Key)] = string(kv.Value)
	}
	return keys
}

// discoveringMember prepares (without starting) a member that bootstraps
// through the service at endpoint, on the given ports (0: free ones).
func discoveringMember(t *testing.T, kind Kind, name, token, endpoint string, client, peer int, opts ...Option) *Server {
	t.Helper()
	s := newServer(t, kind, append([]Option{WithName(name), WithDiscovery(token, endpoint)}, opts...))
	if client == 0 {
		client, peer = FreePort(t), FreePort(t)
	}
	s.ClientPort, s.PeerPort = client, peer
	s.cfg.clientPort, s.cfg.peerPort = client, peer
	return s
}

// startDiscovered starts members d1..d3 of kind through the service at
// endpoint, all at once (each waits for the others to register), on ports
// (or free ones if nil), and waits until each serves.
func startDiscovered(t *testing.T, kind Kind, token, endpoint string, ports [][2]int) []*Server {
	t.Helper()
	members := make([]*Server, 3)
	for i := range members {
		var p [2]int
		if ports != nil {
			p = ports[i]
		}
		members[i] = discoveringMember(t, kind, fmt.Sprintf("d%d", i+1), token, endpoint, p[0], p[1])
	}
	launchAll(t, "start", members)
	return members
}

// checkOneCluster checks that every member lists the same three members,
// with the names and peer URLs they were started with.
func checkOneCluster(t *testing.T, members []*Server) {
	t.Helper()
	var want []string
	for _, s := range members {
		want = append(want, s.Name+" "+s.PeerURL())
	}
	slices.Sort(want)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var firstIDs []uint64
	for _, s := range members {
		resp, err := s.Client(t).MemberList(ctx)
		if err != nil {
			t.Fatalf("member list on %s: %v", s.Name, err)
		}
		var got []string
		var ids []uint64
		for _, m := range resp.Members {
			got = append(got, m.Name+" "+strings.Join(m.PeerURLs, ","))
			ids = append(ids, m.ID)
		}
		slices.Sort(got)
		slices.Sort(ids)
		if firstIDs == nil {
			firstIDs = ids
		}
		if !slices.Equal(got, want) || !slices.Equal(ids, firstIDs) {
			t.Errorf("%s lists %v (ids %x); want %v (ids %x)", s.Name, got, ids, want, firstIDs)
		}
	}
}

// checkRefused starts s, one member too many, and checks it exits 1 with
// etcd's full-cluster error, registering nothing.
func checkRefused(t *testing.T, s *Server, service *clientv3.Client, token string) {
	t.Helper()
	before := registryKeys(t, service, token)
	if err := s.launch(); err == nil {
		t.Fatalf("%s, a member beyond the size, started", s.Name)
	}
	if st := s.ExitState(); st == nil || st.ExitCode() != 1 {
		t.Errorf("%s exited with %v, want exit status 1", s.Name, st)
	}
	if !strings.Contains(s.Log(), fullClusterError) {
		t.Errorf("%s's log lacks %q", s.Name, fullClusterError)
	}
	if after := registryKeys(t, service, token); !reflect.DeepEqual(after, before) {
		t.Errorf("%s changed the registry: %v, was %v", s.Name, after, before)
	}
}

// A MetaStore discovery service: reference etcd members discover each
// other through it, then MetaStore members with the same names, peer URLs
// and token do. Both write the same keys and values, form one cluster,
// and refuse a fourth member with the same words.
func TestDiscoveryThroughMetaStore(t *testing.T) {
	const token = "ms-service"
	service := StartMetaStore(t)
	svc := service.Client(t)
	putSize(t, svc, token, 3)
	ports := make([][2]int, 3)
	for i := range ports {
		ports[i] = [2]int{FreePort(t), FreePort(t)}
	}

	etcds := startDiscovered(t, KindEtcd, token, service.Endpoint(), ports)
	checkOneCluster(t, etcds)
	etcdKeys := registryKeys(t, svc, token)
	checkRefused(t, discoveringMember(t, KindEtcd, "d4", token, service.Endpoint(), 0, 0), svc, token)
	for _, s := range etcds {
		s.Kill()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := svc.Delete(ctx, "/_etcd/registry/"+token+"/members/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}

	metastores := startDiscovered(t, KindMetaStore, token, service.Endpoint(), ports)
	checkOneCluster(t, metastores)
	if msKeys := registryKeys(t, svc, token); !reflect.DeepEqual(msKeys, etcdKeys) {
		t.Errorf("MetaStore members wrote %v; etcd members wrote %v", msKeys, etcdKeys)
	}
	if len(etcdKeys) != 4 {
		t.Errorf("etcd's registry: %v, want the size and 3 members", etcdKeys)
	}
	checkRefused(t, discoveringMember(t, KindMetaStore, "d4", token, service.Endpoint(), 0, 0), svc, token)
}

// A reference etcd discovery service: three MetaStore members discover
// each other through it and refuse a fourth.
func TestDiscoveryThroughEtcd(t *testing.T) {
	const token = "etcd-service"
	service := StartEtcd(t)
	svc := service.Client(t)
	putSize(t, svc, token, 3)
	checkOneCluster(t, startDiscovered(t, KindMetaStore, token, service.Endpoint(), nil))
	checkRefused(t, discoveringMember(t, KindMetaStore, "d4", token, service.Endpoint(), 0, 0), svc, token)
}

// A member whose discovery service cannot be reached does not start a
// cluster of its own: it retries (as etcd, logging each backoff) and
// opens no client or peer port meanwhile.
func TestDiscoveryUnreachableServiceStartsNoCluster(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nowhere := l.Addr().String()
	l.Close()
	s := discoveringMember(t, KindMetaStore, "alone", "unreachable", nowhere, 0, 0,
		WithFlags("--discovery-request-timeout=200ms"), WithStartTimeout(time.Minute))
	started := make(chan error, 1)
	go func() { started <- s.launch() }()
	const retry = `"retry connecting to discovery service"`
	deadline := time.After(30 * time.Second)
	for strings.Count(s.Log(), retry) < 2 {
		select {
		case err := <-started:
			t.Fatalf("the member started (err %v) instead of waiting for the discovery service", err)
		case <-deadline:
			t.Fatal("no retries logged within 30s")
		case <-time.After(50 * time.Millisecond):
		}
	}
	for _, port := range []int{s.ClientPort, s.PeerPort} {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			t.Errorf("port %d is open while discovery has not succeeded", port)
		}
	}
	s.Kill()
	<-started
}

// Discovery over TLS with a client certificate, into a service with auth
// enabled: --discovery-cacert/-cert/-key and --discovery-user/-password
// reach it; a wrong password fails the start with etcd's error.
func TestDiscoveryOverTLSWithAuth(t *testing.T) {
	const token = "secured"
	dir := t.TempDir()
	ca := newTestCA(t, dir, "discovery")
	srvCert, srvKey := ca.issue(t, "server")
	cliCert, cliKey := ca.issue(t, "member")
	service := StartMetaStore(t, WithHTTPS(true, false), WithFlags(
		"--cert-file="+srvCert, "--key-file="+srvKey, "--trusted-ca-file="+ca.file, "--client-cert-auth"))
	rootCert, rootKey := ca.issue(t, "root")
	svc, err := tlsClient(t, []string{service.Endpoint()}, ca.file, rootCert, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	putSize(t, svc, token, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := svc.UserAdd(ctx, "root", "rootpw"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AuthEnable(ctx); err != nil {
		t.Fatal(err)
	}
	secured := func(name, password string) *Server {
		return discoveringMember(t, KindMetaStore, name, token, service.Endpoint(), 0, 0, WithFlags(
			"--discovery-insecure-transport=false", "--discovery-cacert="+ca.file,
			"--discovery-cert="+cliCert, "--discovery-key="+cliKey,
			"--discovery-user=root", "--discovery-password="+password))
	}

	wrong := secured("wrong", "nope")
	if err := wrong.launch(); err == nil {
		t.Fatal("a member with a wrong discovery password started")
	}
	const authFailed = "failed to join discovery cluster (etcdserver: authentication failed, invalid user ID or password)"
	if st := wrong.ExitState(); st.ExitCode() != 1 || !strings.Contains(wrong.Log(), authFailed) {
		t.Errorf("wrong password: exit %v; want exit status 1 and %q in the log", st, authFailed)
	}

	m := secured("d1", "rootpw")
	launchAll(t, "start", []*Server{m})
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	resp, err := m.Client(t).MemberList(ctx2)
	if err != nil || len(resp.Members) != 1 || resp.Members[0].Name != "d1" {
		t.Fatalf("member list: %v %v", resp, err)
	}
}

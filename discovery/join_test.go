package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/discovery"
	"github.com/metastore/metastore/node/nodetest"
	"github.com/metastore/metastore/testkit"
)

// startService starts a one-member MetaStore in the test process to serve
// as the discovery service, and returns a client of it.
func startService(t *testing.T) *clientv3.Client {
	t.Helper()
	return nodetest.Client(t, nodetest.Start(t, nodetest.Lone("service", "/service")))
}

func ctx5(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func put(t *testing.T, cli *clientv3.Client, key, value string) {
	t.Helper()
	if _, err := cli.Put(ctx5(t), key, value); err != nil {
		t.Fatal(err)
	}
}

// registry is every key under the token's prefix, with its value.
func registry(t *testing.T, cli *clientv3.Client, token string) map[string]string {
	t.Helper()
	resp, err := cli.Get(ctx5(t), "/_etcd/registry/"+token+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = string(kv.Value)
	}
	return out
}

func member(i int) discovery.Member {
	return discovery.Member{Name: fmt.Sprintf("m%d", i), PeerURLs: []string{fmt.Sprintf("http://127.0.0.1:%d", 12380+i)}}
}

func config(cli *clientv3.Client, token string) discovery.Config {
	return discovery.Config{Endpoints: cli.Endpoints(), Token: token, InsecureTransport: true, MaxRetries: 1}
}

func join(cfg discovery.Config, m discovery.Member) (map[string][]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return discovery.Join(ctx, zap.NewNop(), actors.RealClock, cfg, m)
}

// Members that start together each register and each get the same
// initial cluster, once all size of them have registered; the service
// holds etcd's keys for them.
func TestJoinGivesEveryMemberTheSameCluster(t *testing.T) {
	cli := startService(t)
	const token = "together"
	put(t, cli, discovery.SizeKey(token), "3")
	cfg := config(cli, token)
	got := make([]map[string][]string, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = join(cfg, member(i+1))
		}()
	}
	wg.Wait()
	want := map[string][]string{}
	keys := map[string]string{"/_etcd/registry/together/_config/size": "3"}
	for i := 1; i <= 3; i++ {
		m := member(i)
		want[m.Name] = m.PeerURLs
		keys[fmt.Sprintf("/_etcd/registry/together/members/%x", m.ID(token))] = m.Name + "=" + m.PeerURLs[0]
	}
	for i := range 3 {
		if errs[i] != nil {
			t.Fatalf("m%d: %v", i+1, errs[i])
		}
		if !reflect.DeepEqual(got[i], want) {
			t.Errorf("m%d got %v, want %v", i+1, got[i], want)
		}
	}
	if reg := registry(t, cli, token); !reflect.DeepEqual(reg, keys) {
		t.Errorf("the service holds %v, want %v", reg, keys)
	}
}

// When more members register than the size (they started at the same
// time), the first size by creation revision make the cluster; a later
// one, registered or not, is refused with etcd's error and adds nothing.
// A member of the cluster that joins again (it crashed before saving its
// state) gets the same cluster.
func TestJoinRefusesAMemberBeyondTheSize(t *testing.T) {
	cli := startService(t)
	const token = "crowded"
	put(t, cli, discovery.SizeKey(token), "2")
	for i := 1; i <= 3; i++ {
		m := member(i)
		put(t, cli, discovery.MemberKey(token, m.ID(token)), m.Name+"="+m.PeerURLs[0])
	}
	before := registry(t, cli, token)
	cfg := config(cli, token)
	for _, i := range []int{3, 4} {
		_, err := join(cfg, member(i))
		var derr *discovery.Error
		if !errors.Is(err, discovery.ErrFullCluster) || !errors.As(err, &derr) ||
			err.Error() != "failed to join discovery cluster (discovery: cluster is full)" {
			t.Errorf("m%d: err = %v, want etcd's full cluster error", i, err)
		}
	}
	if after := registry(t, cli, token); !reflect.DeepEqual(after, before) {
		t.Errorf("refused members changed the registry: %v, was %v", after, before)
	}
	got, err := join(cfg, member(1))
	want := map[string][]string{"m1": member(1).PeerURLs, "m2": member(2).PeerURLs}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("m1 joining again: %v, %v; want %v", got, err, want)
	}
}

// A size key that is missing or not a positive number fails the join at
// once (etcd does not retry it), before the member registers.
func TestJoinFailsOnAMissingOrBadSize(t *testing.T) {
	cli := startService(t)
	for _, tc := range []struct {
		size string // "" for none
		want error
	}{{"", discovery.ErrSizeNotFound}, {"0", discovery.ErrBadSizeKey}, {"-3", discovery.ErrBadSizeKey}, {"three", discovery.ErrBadSizeKey}} {
		token := "size-" + tc.size
		if tc.size != "" {
			put(t, cli, discovery.SizeKey(token), tc.size)
		}
		_, err := join(config(cli, token), member(1))
		if !errors.Is(err, tc.want) {
			t.Errorf("size %q: err = %v, want %v", tc.size, err, tc.want)
		}
		if reg := registry(t, cli, token); len(reg) > 1 {
			t.Errorf("size %q: the member registered anyway: %v", tc.size, reg)
		}
	}
}

// An unreachable service is retried with etcd's backoff (2 s, 4 s, 8 s...,
// logged as etcd logs it) until the retries are spent; the join then
// fails with etcd's error.
func TestJoinGivesUpOnAnUnreachableService(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	clock := testkit.NewFakeClock(time.Unix(0, 0))
	core, logs := observer.New(zap.WarnLevel)
	cfg := discovery.Config{Endpoints: []string{addr}, Token: "t", InsecureTransport: true,
		RequestTimeout: 100 * time.Millisecond, MaxRetries: 3}
	done := make(chan error, 1)
	go func() {
		_, err := discovery.Join(context.Background(), zap.New(core), clock, cfg, member(1))
		done <- err
	}()
	var backoffs []time.Duration
	for {
		select {
		case err := <-done:
			if !errors.Is(err, discovery.ErrTooManyRetries) || err.Error() != "failed to join discovery cluster (discovery: too many retries)" {
				t.Fatalf("err = %v, want etcd's too many retries", err)
			}
			for _, e := range logs.FilterMessage("retry connecting to discovery service").All() {
				backoffs = append(backoffs, e.ContextMap()["backoff"].(time.Duration))
			}
			if want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second}; !reflect.DeepEqual(backoffs, want) {
				t.Errorf("backoffs logged: %v, want %v", backoffs, want)
			}
			if n := logs.FilterMessage("failed to get cluster size from discovery service").Len(); n != 4 {
				t.Errorf("%d failed size reads logged, want 4 (the first try and 3 retries)", n)
			}
			return
		default:
		}
		if clock.WaitPending(1, 10*time.Millisecond) {
			clock.Advance(time.Hour)
		}
	}
}

// With auth enabled on the service, --discovery-user/--discovery-password
// log in; a wrong password fails the join at once with etcd's error.
func TestJoinAuthenticates(t *testing.T) {
	cli := startService(t)
	const token = "auth"
	put(t, cli, discovery.SizeKey(token), "1")
	ctx := ctx5(t)
	if _, err := cli.UserAdd(ctx, "root", "rootpw"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := config(cli, token)
	cfg.User, cfg.Password = "root", "wrong"
	if _, err := join(cfg, member(1)); rpctypes.Error(errors.Unwrap(err)) != rpctypes.ErrAuthFailed ||
		!strings.HasPrefix(err.Error(), "failed to join discovery cluster (") {
		t.Errorf("wrong password: err = %v, want etcd's authentication failure", err)
	}
	cfg.Password = "rootpw"
	got, err := join(cfg, member(1))
	if want := map[string][]string{"m1": member(1).PeerURLs}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("right password: %v, %v; want %v", got, err, want)
	}
}

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Multi-member clusters of real processes on loopback (issue 7).

func clusterClient(t *testing.T, servers []*Server) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: Endpoints(servers), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// leaderOf asks every running member for its status and returns the index
// of the leader all of them agree on, or -1.
func leaderOf(t *testing.T, servers []*Server) int {
	t.Helper()
	var lead uint64
	found := -1
	for i, s := range servers {
		if !s.Running() {
			continue
		}
		cli := s.Client(t)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := cli.Status(ctx, s.Endpoint())
		cancel()
		cli.Close()
		if err != nil || st.Leader == 0 || (lead != 0 && st.Leader != lead) {
			return -1
		}
		lead = st.Leader
		if st.Header.MemberId == lead {
			found = i
		}
	}
	return found
}

func waitLeader(t *testing.T, servers []*Server, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if i := leaderOf(t, servers); i >= 0 {
			return i
		}
		if time.Now().After(deadline) {
			t.Fatalf("no agreed leader within %v", within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func eachKind(t *testing.T, f func(t *testing.T, kind Kind)) {
	for _, kind := range []Kind{KindMetaStore, KindEtcd} {
		t.Run(string(kind), func(t *testing.T) { f(t, kind) })
	}
}

// TestClusterReplication: a write through any member is readable on
// every member; MemberList on every member shows the three members with
// their names and URLs; every member reports the same leader.
func TestClusterReplication(t *testing.T) {
	eachKind(t, func(t *testing.T, kind Kind) {
		servers := StartCluster(t, kind, 3)
		waitLeader(t, servers, 10*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for i, s := range servers {
			if _, err := s.Client(t).Put(ctx, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)); err != nil {
				t.Fatalf("put through %s: %v", s.Name, err)
			}
		}
		for _, s := range servers {
			cli := s.Client(t)
			// Linearizable: every write acknowledged above is visible.
			resp, err := cli.Get(ctx, "k", clientv3.WithPrefix())
			if err != nil {
				t.Fatalf("get through %s: %v", s.Name, err)
			}
			var got []string
			for _, kv := range resp.Kvs {
				got = append(got, string(kv.Key)+"="+string(kv.Value))
			}
			if want := "k0=v0 k1=v1 k2=v2"; strings.Join(got, " ") != want {
				t.Fatalf("%s: got %v, want %s", s.Name, got, want)
			}
			if resp.Header.Revision != 4 {
				t.Fatalf("%s: revision %d, want 4", s.Name, resp.Header.Revision)
			}
		}
		// Members publish their names and client URLs after start.
		deadline := time.Now().Add(10 * time.Second)
		for _, s := range servers {
			for {
				ml, err := s.Client(t).MemberList(ctx)
				if err != nil {
					t.Fatalf("member list through %s: %v", s.Name, err)
				}
				var rows []string
				for _, m := range ml.Members {
					rows = append(rows, fmt.Sprintf("%s %v %v %v", m.Name, m.PeerURLs, m.ClientURLs, m.IsLearner))
				}
				sort.Strings(rows)
				var want []string
				for _, o := range servers {
					want = append(want, fmt.Sprintf("%s [%s] [%s] false", o.Name, o.PeerURL(), o.ClientURL()))
				}
				if strings.Join(rows, "\n") == strings.Join(want, "\n") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: members\n%s\nwant\n%s", s.Name, strings.Join(rows, "\n"), strings.Join(want, "\n"))
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	})
}

// TestClusterLeaderKill: 16 writers through all members; the leader is
// killed (-9); a new leader is elected, writes go on, and after the old
// leader restarts every acknowledged write is on every member.
func TestClusterLeaderKill(t *testing.T) {
	eachKind(t, func(t *testing.T, kind Kind) {
		servers := StartCluster(t, kind, 3)
		lead := waitLeader(t, servers, 10*time.Second)
		cli := clusterClient(t, servers)

		var mu sync.Mutex
		acked := map[string]string{}
		var stop atomic.Bool
		var wg sync.WaitGroup
		var failures atomic.Int64
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; !stop.Load(); i++ {
					k, v := fmt.Sprintf("w%02d-%06d", w, i), fmt.Sprintf("v%d", i)
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
					_, err := cli.Put(ctx, k, v)
					cancel()
					if err != nil {
						failures.Add(1)
						continue
					}
					mu.Lock()
					acked[k] = v
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Second)
		servers[lead].Kill()
		killed := time.Now()
		rest := append(append([]*Server{}, servers[:lead]...), servers[lead+1:]...)
		waitLeader(t, rest, 10*time.Second)
		// A write through the survivors must succeed soon after.
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := clusterClient(t, rest).Put(ctx, "after-failover", "x")
			cancel()
			if err == nil {
				break
			}
			if time.Since(killed) > 15*time.Second {
				t.Fatalf("no write succeeded %v after the leader died: %v", time.Since(killed), err)
			}
		}
		t.Logf("%s: first write %v after the leader was killed", kind, time.Since(killed).Round(time.Millisecond))
		time.Sleep(time.Second)
		stop.Store(true)
		wg.Wait()
		servers[lead].Restart(t)

		mu.Lock()
		defer mu.Unlock()
		if len(acked) < 100 {
			t.Fatalf("only %d writes acknowledged (%d failed)", len(acked), failures.Load())
		}
		t.Logf("%s: %d writes acknowledged, %d failed", kind, len(acked), failures.Load())
		// Every member, the restarted one included, has every acknowledged
		// write once it has caught up (a linearizable read waits for that).
		for _, s := range servers {
			c := s.Client(t)
			var resp *clientv3.GetResponse
			var err error
			for deadline := time.Now().Add(15 * time.Second); ; {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				resp, err = c.Get(ctx, "w", clientv3.WithPrefix())
				cancel()
				if err == nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("%s: %v", s.Name, err)
			}
			have := map[string]string{}
			for _, kv := range resp.Kvs {
				have[string(kv.Key)] = string(kv.Value)
			}
			for k, v := range acked {
				if have[k] != v {
					t.Fatalf("%s: acknowledged %s=%s is %q", s.Name, k, v, have[k])
				}
			}
		}
		// And they agree on the whole key space.
		hashes := map[uint32]bool{}
		var rev int64
		for _, s := range servers {
			c := s.Client(t)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			st, err := c.Status(ctx, s.Endpoint())
			if err == nil && (rev == 0 || st.Header.Revision < rev) {
				rev = st.Header.Revision
			}
			cancel()
		}
		for _, s := range servers {
			c := s.Client(t)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			h, err := c.HashKV(ctx, s.Endpoint(), rev)
			cancel()
			if err != nil {
				if errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("%s: hashkv timed out", s.Name)
				}
				t.Fatalf("%s: hashkv: %v", s.Name, err)
			}
			hashes[h.Hash] = true
		}
		if len(hashes) != 1 {
			t.Fatalf("members disagree at revision %d: hashes %v", rev, hashes)
		}
	})
}

// TestClusterWrongToken: a member whose data dir is lost and which is
// started again with another --initial-cluster-token bootstraps a cluster
// of its own (another cluster id); the running members refuse its traffic
// ("request cluster ID mismatch" in their logs, as etcd's) and go on
// serving, unharmed.
func TestClusterWrongToken(t *testing.T) {
	eachKind(t, func(t *testing.T, kind Kind) {
		servers := StartCluster(t, kind, 3)
		waitLeader(t, servers, 10*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cli := clusterClient(t, servers[:2])
		if _, err := cli.Put(ctx, "before", "1"); err != nil {
			t.Fatal(err)
		}
		stray := servers[2]
		stray.Kill()
		if err := os.RemoveAll(stray.DataDir); err != nil {
			t.Fatal(err)
		}
		stray.cfg.flags = append(stray.cfg.flags, "--initial-cluster-token=another-token")
		go stray.launch() // it never becomes ready: it has no quorum
		deadline := time.Now().Add(15 * time.Second)
		for {
			if strings.Contains(servers[0].Log()+servers[1].Log(), "request cluster ID mismatch") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal(`no "request cluster ID mismatch" in the running members' logs`)
			}
			time.Sleep(200 * time.Millisecond)
		}
		// The two survivors still form a quorum and serve (after an
		// election if the stray one led).
		for deadline := time.Now().Add(20 * time.Second); ; {
			pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
			_, err := cli.Put(pctx, "after", "2")
			pcancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("put after the stray member came up: %v", err)
			}
		}
		ml, err := cli.MemberList(ctx)
		if err != nil || len(ml.Members) != 3 {
			t.Fatalf("member list %v %v", ml, err)
		}
		stray.Kill()
	})
}

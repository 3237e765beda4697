package e2e

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

type ackedPut struct {
	key, value string
	rev        int64
}

// TestCrashLosesNoAcknowledgedWrite kills MetaStore with SIGKILL under a
// concurrent write load and checks that every acknowledged put survives.
func TestCrashLosesNoAcknowledgedWrite(t *testing.T) {
	rounds := 2
	if os.Getenv("METASTORE_LONG") == "1" {
		rounds = 10
	}
	s := StartMetaStore(t)
	cli := s.Client(t)
	var allAcked []ackedPut
	for round := range rounds {
		allAcked = append(allAcked, killUnderWrites(t, s, cli, fmt.Sprintf("round%d", round))...)
		s.Restart(t)
		verifyAcked(t, s, allAcked)
	}
}

// killUnderWrites has 64 clients put keys under "crash/" for 1.5 s, kills
// s with SIGKILL while they do, and returns the puts acknowledged. tag
// goes into the values, so that each round writes new ones.
func killUnderWrites(t *testing.T, s *Server, cli *clientv3.Client, tag string) []ackedPut {
	t.Helper()
	const writers = 64
	var (
		mu    sync.Mutex
		acked []ackedPut
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("crash/w%02d/k%d", w, i%5)
				val := fmt.Sprintf("%s-w%d-i%d", tag, w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				r, err := cli.Put(ctx, key, val)
				cancel()
				if err != nil {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					continue
				}
				mu.Lock()
				acked = append(acked, ackedPut{key, val, r.Header.Revision})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	s.Kill()
	close(stop)
	wg.Wait()
	if len(acked) == 0 {
		t.Fatalf("%s: no put acknowledged in 1.5s", tag)
	}
	t.Logf("%s: %d puts acknowledged before SIGKILL", tag, len(acked))
	return acked
}

// verifyAcked checks every acknowledged put against the server's state:
// the key's mod revision is at least the acked one, with the same value if
// equal, and the store's revision covers the highest acked revision.
func verifyAcked(t *testing.T, s *Server, acked []ackedPut) {
	t.Helper()
	cli := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "crash/", clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	state := map[string][2]any{}
	for _, kv := range resp.Kvs {
		state[string(kv.Key)] = [2]any{string(kv.Value), kv.ModRevision}
	}
	var maxRev int64
	seenRev := map[int64]ackedPut{}
	lost := 0
	for _, a := range acked {
		maxRev = max(maxRev, a.rev)
		if prev, dup := seenRev[a.rev]; dup && prev != a {
			t.Errorf("two puts acknowledged at revision %d: %+v and %+v", a.rev, prev, a)
		}
		seenRev[a.rev] = a
		st, ok := state[a.key]
		if !ok {
			lost++
			if lost <= 10 {
				t.Errorf("acknowledged put %s=%s@%d lost: key missing after restart", a.key, a.value, a.rev)
			}
			continue
		}
		val, mod := st[0].(string), st[1].(int64)
		if mod < a.rev || (mod == a.rev && val != a.value) {
			lost++
			if lost <= 10 {
				t.Errorf("acknowledged put %s=%s@%d lost: key is %s@%d after restart", a.key, a.value, a.rev, val, mod)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged puts lost", lost, len(acked))
	}
	if resp.Header.Revision < maxRev {
		t.Fatalf("revision after restart %d < highest acknowledged revision %d", resp.Header.Revision, maxRev)
	}
}

// TestGracefulStop: SIGTERM makes MetaStore exit 0, and its data persists.
func TestGracefulStop(t *testing.T) {
	s := StartMetaStore(t)
	cli := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var last int64
	for i := range 50 {
		r, err := cli.Put(ctx, fmt.Sprintf("g/%03d", i), fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		last = r.Header.Revision
	}
	if _, err := cli.Delete(ctx, "g/000"); err != nil {
		t.Fatal(err)
	}
	s.Stop() // fails the test unless exit status 0
	if st := s.ExitState(); st == nil || st.ExitCode() != 0 {
		t.Fatalf("exit state after SIGTERM: %v", st)
	}
	s.Restart(t)
	cli2 := s.Client(t)
	g, err := cli2.Get(ctx, "g/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Kvs) != 49 || g.Header.Revision != last+1 {
		t.Fatalf("after restart: %d keys at revision %d, want 49 at %d", len(g.Kvs), g.Header.Revision, last+1)
	}
	if string(g.Kvs[0].Key) != "g/001" || string(g.Kvs[48].Value) != "49" {
		t.Fatalf("after restart: first %s last %s=%s", g.Kvs[0].Key, g.Kvs[48].Key, g.Kvs[48].Value)
	}
	s.Stop()
}

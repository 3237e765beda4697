package nodetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/metastore/metastore/node"
)

// ReadyWithin is how long a started member may take to be ready.
const ReadyWithin = 20 * time.Second

// Start starts cfg's member, stops it when the test ends, and waits until
// it is ready (WaitReady); the test fails if it does not start or is not
// ready.
func Start(t testing.TB, cfg node.Config) *node.Node {
	t.Helper()
	return StartAll(t, cfg)[0]
}

// StartAll starts every member, at once, before it waits for any: a
// member of a new cluster is ready only once a quorum runs, and one that
// bootstraps through discovery returns from node.Start only once every
// member has registered. Each is stopped when the test ends.
func StartAll(t testing.TB, cfgs ...node.Config) []*node.Node {
	t.Helper()
	ns := make([]*node.Node, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		wg.Go(func() { ns[i], errs[i] = node.Start(cfg) })
	}
	wg.Wait()
	for _, n := range ns {
		if n != nil {
			t.Cleanup(n.Stop)
		}
	}
	for i, n := range ns {
		if errs[i] == nil {
			errs[i] = WaitReady(n)
		}
		if errs[i] != nil {
			t.Fatalf("start %s: %v", cfgs[i].Name, errs[i])
		}
	}
	return ns
}

// WaitReady waits until n is ready to serve (it knows a leader), for
// ReadyWithin at most; it returns the member's error if one of its
// subsystems stops for good first.
func WaitReady(n *node.Node) error {
	select {
	case <-n.Ready():
		return nil
	case err := <-n.Fatal():
		return fmt.Errorf("stopped while starting: %w", err)
	case <-time.After(ReadyWithin):
		return errors.New("not ready (no leader)")
	}
}

// Client is a clientv3 client of n's client listeners, closed when the
// test ends.
func Client(t testing.TB, n *node.Node) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: n.ClientAddrs(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

package node_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// keepAliveOnce renews lease id over a keep-alive stream of its own on
// lc's member.
func keepAliveOnce(ctx context.Context, lc pb.LeaseClient, id int64) (*pb.LeaseKeepAliveResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := lc.LeaseKeepAlive(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
		return nil, err
	}
	return stream.Recv()
}

// A leader cut off from its peers acknowledges no keep-alive sent to it
// after the cut: each waits for a quorum round begun after it arrived,
// which no message can complete, and is refused with etcd's "not a
// primary lessor" once the leader steps down (or forwarded, and refused
// for want of a leader, after). A clientv3 keep-alive loop whose stream
// was on that member moves to the majority, which keeps the lease alive.
func TestPartitionIsolatedLeaderRefusesKeepAlives(t *testing.T) {
	c := startCluster(t)
	old, _ := c.waitLeader(c.members, 0, 10*time.Second)
	const ttl = 30 // outlives the scenario: only missing keep-alives could end it
	var raw, loop, late int64
	for _, id := range []*int64{&raw, &loop, &late} {
		ctx, cancel := ctx3()
		g, err := old.cli.Grant(ctx, ttl)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		*id = int64(g.ID)
	}

	// clientv3's keep-alive loop, its stream on the old leader (the only
	// endpoint it knows until the first response), then told of all three.
	// clientv3 gives up a lease whose first keep-alive is not answered
	// within DialTimeout + 1 s: give it time to land on the old member
	// twice (after the cut it holds a keep-alive for a request timeout,
	// 7 s, looking for a leader before it refuses it, as etcd does).
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{old.addr}, DialTimeout: 20 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	kctx, kcancel := context.WithCancel(context.Background())
	t.Cleanup(kcancel)
	kach, err := cli.KeepAlive(kctx, clientv3.LeaseID(loop))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-kach:
		if r == nil || r.MemberId != old.id {
			t.Fatalf("first keep-alive response %+v, want one from the old leader %x", r, old.id)
		}
	case <-time.After(opTimeout):
		t.Fatal("no keep-alive response from the leader")
	}
	var addrs []string
	for _, m := range c.members {
		addrs = append(addrs, m.addr)
	}
	cli.SetEndpoints(addrs...)

	lc := pb.NewLeaseClient(old.conn)
	ctx, cancel := ctx3()
	r, err := keepAliveOnce(ctx, lc, raw)
	cancel()
	if err != nil || r.TTL != ttl {
		t.Fatalf("keep-alive on the leader before the cut: %v, %v", r, err)
	}

	c.part.isolate(old.id)
	cutAt := time.Now()
	// A keep-alive the loop sends at once, on its stream to the old leader.
	lateCh, err := cli.KeepAlive(kctx, clientv3.LeaseID(late))
	if err != nil {
		t.Fatal(err)
	}

	// Keep-alives to the old leader every 100 ms for two election timeouts
	// (it steps down within that), each on its own stream.
	type outcome struct {
		sent time.Duration
		what string
	}
	var (
		mu          sync.Mutex
		outcomes    []outcome
		notPrimary  int
		wg          sync.WaitGroup
		refusalWait = opTimeout + 2*election // step-down comes within 2 election timeouts
	)
	for time.Since(cutAt) < 2*election {
		wg.Add(1)
		go func(sent time.Duration) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), refusalWait)
			defer cancel()
			r, err := keepAliveOnce(ctx, lc, raw)
			what := describe(err)
			if err == nil {
				what = fmt.Sprintf("TTL %d", r.TTL)
				if r.TTL > 0 {
					t.Errorf("keep-alive sent %v after the cut acknowledged by the isolated old leader (TTL %d)", sent, r.TTL)
				}
			}
			if s, ok := status.FromError(err); ok && s.Code() == codes.Unknown && s.Message() == "not a primary lessor" {
				mu.Lock()
				notPrimary++
				mu.Unlock()
			}
			mu.Lock()
			outcomes = append(outcomes, outcome{sent.Round(10 * time.Millisecond), what})
			mu.Unlock()
		}(time.Since(cutAt))
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	sort.Slice(outcomes, func(i, j int) bool { return outcomes[i].sent < outcomes[j].sent })
	for _, o := range outcomes {
		t.Logf("keep-alive sent to the isolated old leader %v after the cut: %s", o.sent, o.what)
	}
	if notPrimary == 0 {
		t.Errorf("no keep-alive on the isolated leader was refused with etcd's %v %q", codes.Unknown, "not a primary lessor")
	}

	// The clientv3 loop renews through the majority.
	select {
	case r, ok := <-lateCh:
		switch {
		case !ok:
			t.Fatal("clientv3 keep-alive channel closed: the lease was lost")
		case r.MemberId == old.id || r.TTL != ttl:
			t.Fatalf("clientv3 keep-alive after the cut answered by %x with TTL %d", r.MemberId, r.TTL)
		}
		t.Logf("clientv3 keep-alive renewed through %x %v after the cut", r.MemberId, time.Since(cutAt).Round(10*time.Millisecond))
	case <-time.After(time.Until(cutAt.Add(ttl * time.Second))):
		t.Fatalf("clientv3 keep-alive loop did not renew through the majority within the lease's TTL")
	}
}

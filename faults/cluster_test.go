package faults

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"

	"github.com/metastore/metastore/node"
	"github.com/metastore/metastore/node/nodetest"
)

// cluster is three members, each on a disk of its own under one power (a
// full power loss takes every disk at one instant), on fixed ports, so a
// member restarts where its peers and clients look for it.
//
// A member that lost power is dead until it restarts: it still runs until
// stopped, but it drops its raft messages to and from its peers from the
// power loss on (node.Config.PeerCut), so nothing it does after the
// instant its disk was cloned reaches the cluster — as when the power
// goes. Its peers do not cut it: the transport drops a MsgSnap to a cut
// peer without reporting it failed, and raft would wait on it for good.
type cluster struct {
	t       *testing.T
	p       *power
	members []*cmember
}

type cmember struct {
	name string
	cfg  node.Config
	disk *disk
	n    *node.Node // nil while down
	conn *grpc.ClientConn
	dead atomic.Bool
	// leftovers are what its snapshot folder held when it restarted
	// after a power loss.
	leftovers []string
	faults    faultSwitch // errors injected into its disk's operations
}

func startCluster(t *testing.T, p *power) *cluster {
	c := &cluster{t: t, p: p}
	initial := map[string][]string{}
	for _, name := range []string{"m1", "m2", "m3"} {
		cfg := memberConfig(t, name)
		peer, client := nodetest.FreeURL(t), nodetest.FreeURL(t)
		initial[name] = []string{peer}
		cfg.ListenPeerURLs, cfg.InitialAdvertisePeerURLs = []string{peer}, []string{peer}
		cfg.ListenClientURLs, cfg.AdvertiseClientURLs = []string{client}, []string{client}
		m := &cmember{name: name, cfg: cfg, disk: newDisk(p, vfs.NewCrashableMem())}
		m.cfg.PeerCut = func(uint64) bool { return m.dead.Load() }
		m.conn = dial(t, client[len("http://"):])
		t.Cleanup(func() { m.conn.Close() })
		c.members = append(c.members, m)
	}
	for _, m := range c.members {
		m.cfg.InitialCluster = initial
	}
	t.Cleanup(func() { c.stop(c.members...) })
	if err := c.start(c.members...); err != nil {
		t.Fatal(err)
	}
	return c
}

// start starts members on their disks, all before waiting for any: a
// member knows a leader only once a quorum runs.
func (c *cluster) start(ms ...*cmember) error {
	if err := c.launch(ms...); err != nil {
		return err
	}
	for _, m := range ms {
		if err := nodetest.WaitReady(m.n); err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
	}
	return nil
}

// launch starts members on their disks without waiting for them.
func (c *cluster) launch(ms ...*cmember) error {
	for _, m := range ms {
		m.dead.Store(false)
		cfg := m.cfg
		cfg.FS = errorfs.Wrap(m.disk.FS(), &m.faults)
		n, err := node.Start(cfg)
		if err != nil {
			return fmt.Errorf("start %s: %w", m.name, err)
		}
		m.n = n
	}
	return nil
}

// stop stops members, at once.
func (c *cluster) stop(ms ...*cmember) {
	var wg sync.WaitGroup
	for _, m := range ms {
		if m.n != nil {
			wg.Go(m.n.Stop)
		}
	}
	wg.Wait()
	for _, m := range ms {
		m.n = nil
	}
}

func (c *cluster) disks(ms ...*cmember) []*disk {
	var ds []*disk
	for _, m := range ms {
		ds = append(ds, m.disk)
	}
	return ds
}

func (c *cluster) conns() []*grpc.ClientConn {
	var cs []*grpc.ClientConn
	for _, m := range c.members {
		cs = append(cs, m.conn)
	}
	return cs
}

// leader is the member every running member names as leader.
func (c *cluster) leader(ctx context.Context) (*cmember, *pb.StatusResponse, error) {
	for {
		var lead *cmember
		var lst *pb.StatusResponse
		agree := true
		var id uint64
		for _, m := range c.members {
			st, err := pb.NewMaintenanceClient(m.conn).Status(ctx, &pb.StatusRequest{})
			if err != nil || st.Leader == 0 || (id != 0 && st.Leader != id) {
				agree = false
				break
			}
			id = st.Leader
			if st.Header.MemberId == st.Leader {
				lead, lst = m, st
			}
		}
		if agree && lead != nil {
			return lead, lst, nil
		}
		if err := sleepCtx(ctx); err != nil {
			return nil, nil, errors.New("the members do not agree on a leader")
		}
	}
}

// converge waits until every member has applied what the leader has
// committed, and returns the leader.
func (c *cluster) converge(ctx context.Context) (*cmember, error) {
	lead, st, err := c.leader(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range c.members {
		if _, err := waitApplied(ctx, m.conn, st.RaftIndex); err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
	}
	return lead, nil
}

package raftactor_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
)

// An entry the store fails on every time (a poison entry) must not be
// replayed forever: after a bounded number of replays the raft actor
// reports a fatal error so the member stops with a clear reason, and the
// writes acknowledged before it are still there.
func TestPoisonEntryStopsTheMember(t *testing.T) {
	poison := func(m any) bool {
		a, ok := m.(*storeactor.Apply)
		if !ok {
			return false
		}
		for _, e := range a.Entries {
			if e.Req != nil && e.Req.Put != nil && bytes.Equal(e.Req.Put.Key, []byte("poison")) {
				return true
			}
			if e.Req == nil && bytes.Contains(e.Data, []byte("poison")) {
				return true
			}
		}
		return false
	}
	fatal := make(chan error, 4)
	n := startNode(t, nodeOpts{
		guardian:   true,
		storeWrap:  func(p *actor.Props) *actor.Props { return testkit.PanicOn(p, poison) },
		raftConfig: func(c *raftactor.Config) { c.OnFatal = func(err error) { fatal <- err } },
	})
	n.put("before", "1")
	n.send(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("poison"), Value: []byte("x")}})
	// Reads made once the poison entry is committed wait for the store
	// to apply it, which it never does: the member's stop answers them.
	for start := time.Now(); ; time.Sleep(time.Millisecond) {
		if st := n.status(); st.Committed > st.Applied {
			break
		}
		if time.Since(start) > wait {
			t.Fatal("the poison entry never committed")
		}
	}
	waiting := []<-chan error{n.readIndex(), n.joinRead()}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case err := <-fatal:
			if err == nil {
				t.Fatal("nil fatal error")
			}
			if v, _, ok := n.get("before"); !ok || v != "1" {
				t.Fatalf("acknowledged write lost: %q %v", v, ok)
			}
			// The stopped member fails the reads that waited and refuses
			// later ones, batched or not.
			for _, read := range append(waiting, n.readIndex(), n.joinRead(), n.joinRead()) {
				select {
				case err := <-read:
					if err != rpctypes.ErrGRPCStopped {
						t.Fatalf("read on a stopped member: %v", err)
					}
				case <-time.After(wait):
					t.Fatal("read on a stopped member not answered")
				}
			}
			return
		case <-deadline:
			t.Fatal("poison entry replayed without the member ever giving up")
		case <-time.After(5 * time.Millisecond):
			n.clock.Advance(100 * time.Millisecond)
		}
	}
}

package storeactor_test

import (
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
)

func checkpointReq(cps ...*pb.LeaseCheckpoint) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{Checkpoints: cps}}
}

// A LeaseCheckpoint records each lease's remaining TTL in its record,
// durably, and tells the lessor; a checkpoint of a lease that does not
// exist is ignored (etcd's lessor ignores it too), and one of 0 — a
// renewal's — clears it.
func TestLeaseCheckpointApplied(t *testing.T) {
	h := newHarness(t)
	lessor := h.kit.NewProbe()
	h.stop()
	h.cfg.Leases = lessor.PID()
	h.start()
	h.must(&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 7, TTL: 60}})
	h.must(&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 8, TTL: 90}})
	testkit.Expect[*storeactor.LeasesApplied](lessor, wait)
	testkit.Expect[*storeactor.LeasesApplied](lessor, wait)
	rev := h.rev()

	res := h.must(checkpointReq(&pb.LeaseCheckpoint{ID: 7, Remaining_TTL: 40}, &pb.LeaseCheckpoint{ID: 99, Remaining_TTL: 10}))
	if r, ok := res.Resp.(*pb.LeaseCheckpointResponse); !ok || r.Header.GetRevision() != rev {
		t.Fatalf("response %T %v, want a LeaseCheckpointResponse at revision %d", res.Resp, res.Resp, rev)
	}
	if h.rev() != rev {
		t.Fatalf("a checkpoint moved the revision from %d to %d", rev, h.rev())
	}
	got := testkit.Expect[*storeactor.LeasesApplied](lessor, wait)
	if fmt.Sprint(got.Checkpointed) != "[{7 60 40}]" || len(got.Granted)+len(got.Revoked) != 0 {
		t.Fatalf("lessor told %+v, want lease 7 checkpointed at 40 only", got)
	}
	if _, ok, _ := h.reader.Lease(99); ok {
		t.Fatal("a checkpoint created lease 99")
	}

	h.restart()
	ls, err := h.reader.Leases()
	if err != nil || fmt.Sprint(ls) != "[{7 60 40} {8 90 0}]" {
		t.Fatalf("leases after restart = %v %v", ls, err)
	}

	h.must(checkpointReq(&pb.LeaseCheckpoint{ID: 7, Remaining_TTL: 0}))
	if r, ok, err := h.reader.Lease(7); err != nil || !ok || r.Remaining != 0 || r.TTL != 60 {
		t.Fatalf("lease 7 after a clear = %+v %v %v", r, ok, err)
	}
}

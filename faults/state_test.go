package faults

import (
	"bytes"
	"context"
	"fmt"
	"maps"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc"
)

// readState reads the load's keys and the leases from a member that has
// caught up and takes no writes: it reads until two reads agree, since
// the lessor learns of applied leases just after the store publishes
// them.
func readState(ctx context.Context, conn *grpc.ClientConn) (memberState, error) {
	var prev memberState
	for i := 0; ; i++ {
		st, err := readOnce(ctx, conn)
		if err != nil {
			return st, err
		}
		if i > 0 && sameState(prev, st) {
			return st, nil
		}
		prev = st
		if err := sleepCtx(ctx); err != nil {
			return st, fmt.Errorf("the member's state did not settle: %w", err)
		}
	}
}

func readOnce(ctx context.Context, conn *grpc.ClientConn) (memberState, error) {
	kv, lc := pb.NewKVClient(conn), pb.NewLeaseClient(conn)
	st := memberState{kvs: map[string]*mvccpb.KeyValue{}, leases: map[int64]bool{}}
	from, end := []byte("f/"), []byte("f0")
	for {
		r, err := kv.Range(ctx, &pb.RangeRequest{Key: from, RangeEnd: end, Limit: 2000, Revision: st.rev, Serializable: true})
		if err != nil {
			return st, err
		}
		st.rev = r.Header.Revision
		for _, x := range r.Kvs {
			st.kvs[string(x.Key)] = x
		}
		if !r.More {
			break
		}
		from = append(bytes.Clone(r.Kvs[len(r.Kvs)-1].Key), 0)
	}
	ls, err := lc.LeaseLeases(ctx, &pb.LeaseLeasesRequest{})
	if err != nil {
		return st, err
	}
	for _, l := range ls.Leases {
		st.leases[l.ID] = true
	}
	return st, nil
}

// checkMember reads a caught-up member's state and checks it against the
// model (cut: the acknowledgements that must have survived).
func checkMember(ctx context.Context, r *run, conn *grpc.ClientConn, m *model, cut int64) (memberState, []string) {
	st, err := readState(ctx, conn)
	if err != nil {
		return st, []string{err.Error()}
	}
	v := m.check(st, cut)
	r.count("ops-took-effect", v.took)
	r.count("ops-did-not", v.lost)
	return st, v.violations
}

func sameState(a, b memberState) bool {
	return a.rev == b.rev && maps.Equal(a.leases, b.leases) &&
		maps.EqualFunc(a.kvs, b.kvs, func(x, y *mvccpb.KeyValue) bool { return x.ModRevision == y.ModRevision })
}

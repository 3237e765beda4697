package gateway

import (
	"context"
	"io"
	"maps"
	"slices"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/storeactor"
)

// FuzzLease grants a lease decoded from the fuzz input through the Lease
// service of a world holding seedKV's history (and its lease 7), attaches
// a key to it, then asks TimeToLive, KeepAlive, Leases and Revoke about
// it, lease 7 and a fuzzed id. Each answer must be etcd's: the grant
// refused for a TTL above etcd's maximum or an id in use, the TTL raised
// to the minimum, an unknown lease answered TTL -1 (TimeToLive), 0
// (KeepAlive) or "lease not found" (Revoke), a revoke deleting the
// attached keys in one revision.
func FuzzLease(f *testing.F) {
	for _, s := range []struct {
		r     *pb.LeaseGrantRequest
		probe int64
	}{
		{&pb.LeaseGrantRequest{TTL: 10}, 7},
		{&pb.LeaseGrantRequest{ID: 100, TTL: 1}, 100},
		{&pb.LeaseGrantRequest{ID: -5, TTL: -10}, -5},
		{&pb.LeaseGrantRequest{ID: 7, TTL: 10}, 8},
		{&pb.LeaseGrantRequest{ID: 9, TTL: storeactor.MaxLeaseTTL}, 0},
		{&pb.LeaseGrantRequest{ID: 9, TTL: storeactor.MaxLeaseTTL + 1}, 9},
	} {
		f.Add(mustMarshal(f, s.r), s.probe)
	}
	f.Fuzz(func(t *testing.T, data []byte, probe int64) {
		r := new(pb.LeaseGrantRequest)
		if proto.Unmarshal(data, r) != nil {
			return
		}
		w := newWorld(t)
		m := seedKV(w)
		ls := &leaseServer{g: w.g}
		ttls := map[int64]int64{seedLease: 3600}

		var wantErr error
		switch {
		case r.TTL > storeactor.MaxLeaseTTL:
			wantErr = rpctypes.ErrGRPCLeaseTTLTooLarge
		case r.ID != 0 && m.leases[r.ID]:
			wantErr = rpctypes.ErrGRPCLeaseExist
		}
		got, err := ls.LeaseGrant(w.ctx, proto.Clone(r).(*pb.LeaseGrantRequest))
		var want *pb.LeaseGrantResponse
		if wantErr == nil && err == nil {
			// etcd picks an id for 0; any unused id will do.
			if r.ID == 0 && (got.ID == 0 || m.leases[got.ID]) {
				t.Fatalf("granted id %d", got.ID)
			}
			want = &pb.LeaseGrantResponse{Header: header(m.rev()), ID: cmpOr(r.ID, got.ID), TTL: max(r.TTL, 2)}
		}
		expect(t, r, got, err, want, wantErr)
		if err == nil {
			m.leases[got.ID], ttls[got.ID] = true, got.TTL
			p := &pb.PutRequest{Key: []byte("leased"), Value: []byte("v"), Lease: got.ID}
			if _, err := m.putReq(p); err != nil {
				t.Fatal(err)
			}
			if _, err := w.kv().Put(w.ctx, p); err != nil {
				t.Fatal(err)
			}
		}

		ids := []int64{seedLease, probe}
		if err == nil {
			ids = append(ids, got.ID)
		}
		for _, id := range ids {
			w.checkLease(m, ttls, id)
		}
		leases, err := ls.LeaseLeases(w.ctx, &pb.LeaseLeasesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var listed []int64
		for _, l := range leases.Leases {
			listed = append(listed, l.ID)
		}
		if slices.Sort(listed); !slices.Equal(listed, slices.Sorted(maps.Keys(m.leases))) {
			t.Fatalf("leases %v, want %v", listed, slices.Sorted(maps.Keys(m.leases)))
		}
		for _, id := range ids {
			rr := &pb.LeaseRevokeRequest{ID: id}
			want, wantErr := m.revokeReq(id)
			if wantErr == nil {
				want.Header = header(m.rev())
			}
			got, err := ls.LeaseRevoke(w.ctx, rr)
			expect(t, rr, got, err, want, wantErr)
			w.checkLease(m, ttls, id)
		}
		w.sameKeySpace(m)
		w.noFailures()
	})
}

func cmpOr(a, b int64) int64 {
	if a != 0 {
		return a
	}
	return b
}

// checkLease asks TimeToLive (with keys) and KeepAlive about lease id.
// The clock never moves: a lease's remaining TTL is its granted TTL.
func (w *world) checkLease(m *kvModel, ttls map[int64]int64, id int64) {
	w.t.Helper()
	ls := &leaseServer{g: w.g}
	want := &pb.LeaseTimeToLiveResponse{Header: header(m.rev()), ID: id, TTL: -1}
	if m.leases[id] {
		want.TTL, want.GrantedTTL, want.Keys = ttls[id], ttls[id], m.attached(id)
	}
	r := &pb.LeaseTimeToLiveRequest{ID: id, Keys: true}
	got, err := ls.LeaseTimeToLive(w.ctx, r)
	expect(w.t, r, got, err, want, nil)

	ka := &fakeKeepAliveStream{reqs: []*pb.LeaseKeepAliveRequest{{ID: id}}}
	if err := ls.LeaseKeepAlive(ka); err != nil {
		w.t.Fatal(err)
	}
	wantKA := &pb.LeaseKeepAliveResponse{Header: header(m.rev()), ID: id}
	if m.leases[id] {
		wantKA.TTL = ttls[id]
	}
	if len(ka.sent) != 1 || !proto.Equal(ka.sent[0], wantKA) {
		w.t.Fatalf("keep-alive of %d: %v, want %v", id, ka.sent, wantKA)
	}
}

// fakeKeepAliveStream is a keep-alive stream whose client sends reqs and
// closes.
type fakeKeepAliveStream struct {
	grpc.ServerStream
	reqs []*pb.LeaseKeepAliveRequest
	sent []*pb.LeaseKeepAliveResponse
}

func (s *fakeKeepAliveStream) Context() context.Context { return context.Background() }

func (s *fakeKeepAliveStream) Recv() (*pb.LeaseKeepAliveRequest, error) {
	if len(s.reqs) == 0 {
		return nil, io.EOF
	}
	r := s.reqs[0]
	s.reqs = s.reqs[1:]
	return r, nil
}

func (s *fakeKeepAliveStream) Send(r *pb.LeaseKeepAliveResponse) error {
	s.sent = append(s.sent, r)
	return nil
}

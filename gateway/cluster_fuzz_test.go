package gateway

import (
	"errors"
	"slices"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/types"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// selfPeerURL is the lone member's peer URL in the fuzz world.
const selfPeerURL = "http://127.0.0.1:2380"

// FuzzMemberAdd adds a member decoded from the fuzz input to a lone
// member's cluster through the Cluster service, then updates, lists and
// removes it. The peer URLs must be judged as etcd's types.NewURLs judges
// them (bad ones refused with "member bad URLs"), an accepted member must
// appear with its URLs sorted and its learner flag, a taken URL or id
// must be refused with etcd's error, and a removed member must be gone
// for good.
func FuzzMemberAdd(f *testing.F) {
	for _, r := range []*pb.MemberAddRequest{
		{PeerURLs: []string{"http://10.0.0.2:2380"}},
		{PeerURLs: []string{"https://b:2380", " http://a:2380 "}, IsLearner: true},
		{PeerURLs: []string{"unix://sock", "unixs:///var/run/x"}},
		{PeerURLs: []string{selfPeerURL}},
		{PeerURLs: []string{"http://noport"}},
		{PeerURLs: []string{"http://h:1/path"}},
		{PeerURLs: []string{"ftp://h:1"}},
		{PeerURLs: []string{"%zz"}},
		{},
	} {
		f.Add(mustMarshal(f, r))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := new(pb.MemberAddRequest)
		if proto.Unmarshal(data, r) != nil {
			return
		}
		urls, perr := parsePeerURLs(r.PeerURLs)
		want, werr := types.NewURLs(r.PeerURLs)
		if (perr == nil) != (werr == nil) || perr == nil && !slices.Equal(urls, want.StringSlice()) {
			t.Fatalf("%q: parsed %q (%v), etcd %q (%v)", r.PeerURLs, urls, perr, want.StringSlice(), werr)
		}

		w := newWorld(t)
		cs := &clusterServer{g: w.g}
		resp, err := cs.MemberAdd(w.ctx, proto.Clone(r).(*pb.MemberAddRequest))
		switch {
		case werr != nil:
			expectErr(t, r, err, rpctypes.ErrGRPCMemberBadURLs)
			return
		case slices.Contains(urls, selfPeerURL):
			expectErr(t, r, err, rpctypes.ErrGRPCPeerURLExist)
			return
		case err != nil:
			t.Fatalf("%s: %v", prototext.Format(r), err)
		}
		m := resp.Member
		if m.ID == 0 || m.ID == selfID || m.IsLearner != r.IsLearner || !slices.Equal(m.PeerURLs, urls) {
			t.Fatalf("%s: added %s", prototext.Format(r), prototext.Format(m))
		}
		w.members(t, selfID, m.ID)

		// The same URLs again: the id is taken (same second) or the URLs.
		if _, err := cs.MemberAdd(w.ctx, proto.Clone(r).(*pb.MemberAddRequest)); !errors.Is(err, rpctypes.ErrGRPCMemberExist) && !errors.Is(err, rpctypes.ErrGRPCPeerURLExist) {
			t.Fatalf("%s added twice: %v", prototext.Format(r), err)
		}
		if _, err := cs.MemberUpdate(w.ctx, &pb.MemberUpdateRequest{ID: selfID, PeerURLs: r.PeerURLs}); !errors.Is(err, rpctypes.ErrGRPCPeerURLExist) {
			t.Fatalf("self updated to %q: %v", r.PeerURLs, err)
		}
		if _, err := cs.MemberUpdate(w.ctx, &pb.MemberUpdateRequest{ID: m.ID, PeerURLs: r.PeerURLs}); err != nil {
			t.Fatalf("update of %x: %v", m.ID, err)
		}
		if _, err := cs.MemberRemove(w.ctx, &pb.MemberRemoveRequest{ID: m.ID}); err != nil {
			t.Fatalf("remove of %x: %v", m.ID, err)
		}
		w.members(t, selfID)
		for _, err := range []error{
			second(cs.MemberRemove(w.ctx, &pb.MemberRemoveRequest{ID: m.ID})),
			second(cs.MemberUpdate(w.ctx, &pb.MemberUpdateRequest{ID: m.ID, PeerURLs: r.PeerURLs})),
		} {
			expectErr(t, r, err, rpctypes.ErrGRPCMemberNotFound)
		}
		w.noFailures()
	})
}

func second[T any](_ T, err error) error { return err }

func expectErr(t *testing.T, req proto.Message, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Fatalf("%s: got %v, want %v", prototext.Format(req), got, want)
	}
}

// members checks MemberList against ids.
func (w *world) members(t *testing.T, ids ...uint64) {
	t.Helper()
	resp, err := (&clusterServer{g: w.g}).MemberList(w.ctx, &pb.MemberListRequest{Linearizable: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, m := range resp.Members {
		got = append(got, m.ID)
	}
	slices.Sort(got)
	slices.Sort(ids)
	if !slices.Equal(got, ids) {
		t.Fatalf("members %x, want %x", got, ids)
	}
}

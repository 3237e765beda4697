package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/status"
)

// TestMaintenanceEtcdctl: move-leader, downgrade and member list through
// the real etcdctl give etcd's answers on a single member (ids aside).
// Enabling a valid downgrade is the one deliberate difference: MetaStore
// cannot turn into an etcd 3.6 member and says so.
func TestMaintenanceEtcdctl(t *testing.T) {
	ms := StartMetaStore(t)
	ref := StartEtcd(t)
	selfID := func(s *Server) string {
		out, errOut, err := Etcdctl(t, s.Endpoint(), "endpoint", "status", "-w", "json")
		if err != nil {
			t.Fatalf("%v %s", err, errOut)
		}
		var st []struct {
			Status struct {
				Header struct {
					MemberID uint64 `json:"member_id"`
				} `json:"header"`
			} `json:"Status"`
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil || len(st) != 1 {
			t.Fatalf("endpoint status: %v %q", err, out)
		}
		return fmt.Sprintf("%x", st[0].Status.Header.MemberID)
	}
	steps := [][]string{
		{"move-leader", "SELF"},
		{"move-leader", "1234"},
		{"move-leader", "zz"},
		{"downgrade", "validate", "3.6"},
		{"downgrade", "validate", "3.6.0"},
		{"downgrade", "validate", "3.5"},
		{"downgrade", "validate", "3.7"},
		{"downgrade", "validate", "v3.6"},
		{"downgrade", "validate", "abc"},
		{"downgrade", "enable", "3.5"},
		{"downgrade", "cancel"},
		{"member", "list"},
		{"member", "list", "--consistency=s"},
	}
	for i, args := range steps {
		var outs [2]string
		for j, srv := range []*Server{ms, ref} {
			id := selfID(srv)
			a := make([]string, len(args))
			for k, s := range args {
				a[k] = strings.ReplaceAll(s, "SELF", id)
			}
			out, errOut, err := Etcdctl(t, srv.Endpoint(), a...)
			out = strings.ReplaceAll(out, id, "SELF")
			out = strings.ReplaceAll(out, srv.Endpoint(), "ENDPOINT")
			out = strings.ReplaceAll(out, srv.PeerURL(), "PEER")
			out = strings.ReplaceAll(out, srv.Name, "NAME")
			outs[j] = fmt.Sprintf("%s | %s | %v", out, errText(strings.ReplaceAll(errOut, id, "SELF")), err != nil)
		}
		if outs[0] != outs[1] {
			t.Errorf("step %d %v differs\netcd:      %s\nmetastore: %s", i, args, outs[1], outs[0])
		}
	}
	// The deliberate difference.
	_, errOut, err := Etcdctl(t, ms.Endpoint(), "downgrade", "enable", "3.6")
	if err == nil || !strings.Contains(errOut, "not supported") {
		t.Errorf("downgrade enable 3.6 on MetaStore: %v %q", err, errOut)
	}
}

// TestHashChangesWithWrites: Maintenance.Hash answers with the current
// revision, stays the same while nothing is written, and changes with a
// write.
func TestHashChangesWithWrites(t *testing.T) {
	ms := StartMetaStore(t)
	cli := ms.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mt := pb.NewMaintenanceClient(cli.ActiveConnection())
	hash := func() *pb.HashResponse {
		r, err := mt.Hash(ctx, &pb.HashRequest{})
		if err != nil {
			t.Fatal(status.Convert(err).Message())
		}
		return r
	}
	if _, err := cli.Put(ctx, "a", "1"); err != nil {
		t.Fatal(err)
	}
	h1, h2 := hash(), hash()
	if h1.Hash != h2.Hash || h1.Header.Revision != 2 {
		t.Fatalf("hash at rest: %v / %v (revision %d)", h1.Hash, h2.Hash, h1.Header.Revision)
	}
	if _, err := cli.Put(ctx, "a", "2"); err != nil {
		t.Fatal(err)
	}
	if h3 := hash(); h3.Hash == h1.Hash || h3.Header.Revision != 3 {
		t.Fatalf("hash after a write: %v (was %v), revision %d", h3.Hash, h1.Hash, h3.Header.Revision)
	}
}

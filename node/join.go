package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/storeactor"
)

// A member added with MemberAdd starts with --initial-cluster-state
// existing: it takes the cluster id and its own member id from the running
// members (etcd's GetClusterFromRemotePeers + ValidateClusterAndAssignIDs),
// over their peer URLs:
//
//	GET /members -> pb.MemberListResponse (Header.ClusterId, Members)
const pathMembers = "/members"

// membersHandler answers GET /members from the store's membership.
type membersHandler struct {
	clusterID uint64
	members   func() *storeactor.Members
}

func (h *membersHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	b, err := proto.Marshal(&pb.MemberListResponse{Header: &pb.ResponseHeader{ClusterId: h.clusterID}, Members: h.members().List})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/protobuf")
	_, _ = w.Write(b)
}

// joinIdentity finds this member's id and the cluster's id from the
// members already running, and checks --initial-cluster against them as
// etcd does: the same members, matched by peer URLs.
func joinIdentity(cfg Config, client *http.Client, initial []*pb.Member) (self, cluster uint64, members []*pb.Member, err error) {
	var urls []string
	for _, m := range initial {
		if m.Name != cfg.Name {
			urls = append(urls, m.PeerURLs...)
		}
	}
	remote, err := fetchMembers(client, urls)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("cannot fetch cluster info from peer urls: %w", err)
	}
	if len(remote.Members) != len(initial) {
		return 0, 0, nil, errors.New("error validating peerURLs: member count is unequal")
	}
	for _, em := range remote.Members {
		i := -1
		for j, lm := range initial {
			if sameURLs(em.PeerURLs, lm.PeerURLs) {
				i = j
				break
			}
		}
		if i < 0 {
			return 0, 0, nil, fmt.Errorf("error validating peerURLs: PeerURLs: no match found for existing member (%x, %v)", em.ID, em.PeerURLs)
		}
		if initial[i].Name == cfg.Name {
			self = em.ID
		}
	}
	if self == 0 {
		return 0, 0, nil, fmt.Errorf("error validating peerURLs: this member (%s) is not in the cluster; add it with MemberAdd first", cfg.Name)
	}
	return self, remote.Header.GetClusterId(), remote.Members, nil
}

// fetchMembers asks each URL in turn for the cluster's membership.
func fetchMembers(client *http.Client, urls []string) (*pb.MemberListResponse, error) {
	var last error = errors.New("no peer URLs")
	for _, u := range urls {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp := new(pb.MemberListResponse)
		err := getProto(ctx, client, u+pathMembers, resp)
		cancel()
		if err == nil {
			return resp, nil
		}
		last = err
	}
	return nil, fmt.Errorf("could not retrieve cluster information from the given URLs: %w", last)
}

// hasIdentity reports whether the data dir already belongs to a member.
func hasIdentity(db *pebble.DB) (bool, error) {
	_, closer, err := db.Get(keyIdentity)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, closer.Close()
}

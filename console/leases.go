package console

import (
	"context"
	"net/http"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Leases: LeaseLeases lists every id; a page of them (in id order) is
// detailed with TimeToLive(keys), whose remaining TTL the UI counts down.

const (
	leasePage     = 50
	leaseKeysShow = 20 // attached keys listed per lease (the count is exact)
)

type leaseView struct {
	ID         string   `json:"id"` // hex, as etcdctl writes it
	TTL        int64    `json:"ttl"`
	GrantedTTL int64    `json:"grantedTTL"`
	Keys       [][]byte `json:"keys"`
	KeyCount   int      `json:"keyCount"`
	// Gone: expired or revoked between the listing and its TimeToLive.
	Gone bool `json:"gone,omitempty"`
}

type leasesView struct {
	Total  int         `json:"total"`
	Leases []leaseView `json:"leases"`
	Next   string      `json:"next,omitempty"` // first id of the next page
}

// serveLeases lists a page of leases from id from (hex; "": the first).
func (c *Console) serveLeases(_ http.ResponseWriter, r *http.Request, s *session) reply {
	var from int64
	if f := r.URL.Query().Get("from"); f != "" {
		id, err := parseID(f)
		if err != nil {
			return badRequest(err.Error())
		}
		from = int64(id)
	}
	ctx, cancel := asUser(r, s, rpcTimeout)
	defer cancel()
	lc := pb.NewLeaseClient(c.cfg.Conn)
	list, err := lc.LeaseLeases(ctx, &pb.LeaseLeasesRequest{})
	if err != nil {
		return c.fail(s, err)
	}
	ids := make([]int64, 0, len(list.Leases))
	for _, l := range list.Leases {
		if l.ID >= from {
			ids = append(ids, l.ID)
		}
	}
	slices.Sort(ids)
	out := leasesView{Total: len(list.Leases), Leases: []leaseView{}}
	if len(ids) > leasePage {
		out.Next = hexID(uint64(ids[leasePage]))
		ids = ids[:leasePage]
	}
	for _, id := range ids {
		ttl, err := lc.LeaseTimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: id, Keys: true})
		if err != nil {
			return c.fail(s, err)
		}
		v := leaseView{ID: hexID(uint64(id)), TTL: ttl.TTL, GrantedTTL: ttl.GrantedTTL, KeyCount: len(ttl.Keys), Keys: ttl.Keys, Gone: ttl.TTL == -1}
		if len(v.Keys) > leaseKeysShow {
			v.Keys = v.Keys[:leaseKeysShow]
		}
		out.Leases = append(out.Leases, v)
	}
	return ok(out)
}

// serveLeaseRevoke revokes a lease (its keys are deleted).
func (c *Console) serveLeaseRevoke(_ http.ResponseWriter, r *http.Request, s *session) reply {
	return c.idAction(r, s, "lease-revoke", "lease", rpcTimeout, func(ctx context.Context, id uint64) error {
		_, err := pb.NewLeaseClient(c.cfg.Conn).LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: int64(id)})
		return err
	})
}

package node

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/corruption"
	"github.com/metastore/metastore/storeactor"
)

// Members compare their data (package corruption) by asking each other
// for hashes over the peer URLs, as etcd does:
//
//	GET /members/hashkv?rev=N -> 200 pb.HashKVResponse (header: member id,
//	current revision), or 409 with the gRPC status of the refusal
//	(future revision, compacted)
const pathHashKV = "/members/hashkv"

type hashKVHandler struct {
	self, cluster uint64
	reader        *storeactor.Reader
}

func (h *hashKVHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rev, err := strconv.ParseInt(r.URL.Query().Get("rev"), 10, 64)
	if err != nil {
		http.Error(w, "bad revision", http.StatusBadRequest)
		return
	}
	kh, err := h.reader.HashKV(rev)
	if err != nil {
		writeStatus(w, err)
		return
	}
	writeProto(w, &pb.HashKVResponse{
		Header: &pb.ResponseHeader{ClusterId: h.cluster, MemberId: h.self, Revision: kh.CurrentRevision},
		Hash:   kh.Hash, CompactRevision: kh.CompactRevision, HashRevision: kh.Revision,
	})
}

// peerHashes asks every other member for its hash at rev, at once.
func peerHashes(ctx context.Context, client *http.Client, self uint64, members func() *storeactor.Members, rev int64) []corruption.PeerHash {
	var out []corruption.PeerHash
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range members().List {
		if m.ID == self {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ph := corruption.PeerHash{ID: m.ID}
			for _, u := range m.PeerURLs {
				resp := new(pb.HashKVResponse)
				if ph.Err = getProto(ctx, client, u+pathHashKV+"?rev="+strconv.FormatInt(rev, 10), resp); ph.Err == nil {
					ph.Resp = resp
					break
				}
			}
			mu.Lock()
			out = append(out, ph)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// writeProto answers 200 with m.
func writeProto(w http.ResponseWriter, m proto.Message) {
	b, err := proto.Marshal(m)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/protobuf")
	_, _ = w.Write(b)
}

// writeStatus answers 409 with err as a gRPC status (google.rpc.Status),
// which readProto turns back into the same error.
func writeStatus(w http.ResponseWriter, err error) {
	b, merr := proto.Marshal(status.Convert(err).Proto())
	if merr != nil {
		http.Error(w, merr.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/protobuf")
	w.WriteHeader(http.StatusConflict)
	_, _ = w.Write(b)
}

// getProto GETs url into out; a 409 is the peer's gRPC error.
func getProto(ctx context.Context, client *http.Client, url string, out proto.Message) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	return doProto(client, req, out)
}

func doProto(client *http.Client, req *http.Request, out proto.Message) error {
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return err
	}
	switch res.StatusCode {
	case http.StatusOK:
		return proto.Unmarshal(b, out)
	case http.StatusConflict:
		st := new(spb.Status)
		if err := proto.Unmarshal(b, st); err != nil {
			return err
		}
		return status.ErrorProto(st)
	default:
		return status.Errorf(13, "peer answered %s: %.200s", res.Status, b)
	}
}

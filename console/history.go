package console

import (
	"errors"
	"net/http"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// A key's history. etcd has no history call, but every Range can read at
// a past revision: the version of a key live just before its current one
// was written is the one a Range at mod_revision-1 returns. So the
// history walks back one Range per version, through the key's current
// life (versions since its last creation), until version 1 or the
// compaction point, a page at a time.

const maxHistory = 50

type history struct {
	Revision int64     `json:"revision"`
	Versions []*kvJSON `json:"versions"` // newest first
	// Next continues the walk (before=Next); 0: no older version.
	Next int64 `json:"next,omitempty"`
	// Compacted: older versions were compacted away, at this revision.
	Compacted int64 `json:"compacted,omitempty"`
}

// serveHistory returns up to limit versions of key, newest first: the
// one live at before-1 (before 0: the current one) and those it replaced.
func (c *Console) serveHistory(_ http.ResponseWriter, r *http.Request, s *session) reply {
	q := r.URL.Query()
	key, err1 := param64(q.Get("key"))
	before, err2 := paramInt(q.Get("before"))
	limit, err3 := paramInt(q.Get("limit"))
	if err := firstErr(err1, err2, err3); err != nil {
		return badRequest(err.Error())
	}
	if len(key) == 0 {
		return badRequest("key is empty")
	}
	if limit <= 0 || limit > maxHistory {
		limit = 10
	}
	ctx, cancel := asUser(r, s, rpcTimeout)
	defer cancel()
	kv := pb.NewKVClient(c.cfg.Conn)
	out := history{Versions: []*kvJSON{}}
	at := int64(0)
	if before > 0 {
		at = before - 1
	}
	for int64(len(out.Versions)) < limit {
		resp, err := kv.Range(ctx, &pb.RangeRequest{Key: key, Revision: at})
		if errors.Is(err, rpctypes.ErrGRPCCompacted) || rpctypes.ErrorDesc(err) == rpctypes.ErrorDesc(rpctypes.ErrGRPCCompacted) {
			out.Compacted, out.Next = at, 0
			break
		}
		if err != nil {
			return c.fail(s, err)
		}
		if out.Revision == 0 {
			out.Revision = resp.Header.Revision
		}
		if len(resp.Kvs) == 0 {
			out.Next = 0
			break
		}
		v := resp.Kvs[0]
		out.Versions = append(out.Versions, toKV(v))
		out.Next = 0
		if v.Version <= 1 {
			break // its creation: the version before is another life of the key
		}
		out.Next, at = v.ModRevision, v.ModRevision-1
	}
	return ok(out)
}

package console

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// The key browser shows the key space as a tree: at a prefix, the keys
// right under it and the "directories" (the next path segment, up to and
// including separator) holding more. It never loads a whole prefix: a
// page is built from keys-only Ranges with a limit, each starting where
// the last one stopped, and a directory is skipped over in one step
// (the next Range starts past every key under it), so a page costs a few
// Ranges of at most a page's keys however many keys the prefix holds.
// Pages are read at the revision of the first one, so paging is
// consistent while keys change.

const (
	separator    = '/'
	defaultLimit = 100
	maxLimit     = 1000
)

// kvJSON is a key's metadata, and its value when it was read. Keys and
// values are bytes (base64 in JSON): a key need not be UTF-8.
type kvJSON struct {
	Key            []byte `json:"key"`
	Value          []byte `json:"value,omitempty"`
	Size           int    `json:"size"` // of the value ("" when not read)
	CreateRevision int64  `json:"createRevision"`
	ModRevision    int64  `json:"modRevision"`
	Version        int64  `json:"version"`
	Lease          string `json:"lease,omitempty"` // hex, as etcdctl writes it
}

func toKV(kv *mvccpb.KeyValue) *kvJSON {
	if kv == nil {
		return nil
	}
	out := &kvJSON{Key: kv.Key, Value: kv.Value, Size: len(kv.Value), CreateRevision: kv.CreateRevision,
		ModRevision: kv.ModRevision, Version: kv.Version}
	if kv.Lease != 0 {
		out.Lease = fmt.Sprintf("%x", kv.Lease)
	}
	return out
}

// entry is one row of a listing: a key, or a directory (Dir, Key ends
// with the separator) with the number of keys under it.
type entry struct {
	Key   []byte  `json:"key"`
	Dir   bool    `json:"dir,omitempty"`
	Count int64   `json:"count,omitempty"`
	KV    *kvJSON `json:"kv,omitempty"`
}

type listing struct {
	Revision int64   `json:"revision"`
	Total    int64   `json:"total"` // keys under the prefix
	Entries  []entry `json:"entries"`
	Next     []byte  `json:"next,omitempty"` // where the next page starts (nil: last page)
}

// serveKeys lists a page of the tree under prefix, from key from (the
// previous page's next), at revision rev (0: now).
func (c *Console) serveKeys(_ http.ResponseWriter, r *http.Request, s *session) reply {
	q := r.URL.Query()
	prefix, err1 := param64(q.Get("prefix"))
	from, err2 := param64(q.Get("from"))
	rev, err3 := paramInt(q.Get("rev"))
	limit, err4 := paramInt(q.Get("limit"))
	if err := firstErr(err1, err2, err3, err4); err != nil {
		return badRequest(err.Error())
	}
	if limit <= 0 || limit > maxLimit {
		limit = defaultLimit
	}
	ctx, cancel := asUser(r, s, rpcTimeout)
	defer cancel()
	kv := pb.NewKVClient(c.cfg.Conn)
	end := prefixEnd(prefix)
	out := listing{Revision: rev, Entries: []entry{}}
	if len(from) == 0 {
		from = prefix
		if len(from) == 0 {
			from = []byte{0}
		}
		// The first page also counts the prefix: one count-only Range
		// (the member's count index answers it without walking).
		resp, err := kv.Range(ctx, &pb.RangeRequest{Key: from, RangeEnd: end, CountOnly: true, Revision: rev})
		if err != nil {
			return c.fail(s, err)
		}
		out.Total, out.Revision = resp.Count, resp.Header.Revision
	}
	for len(out.Entries) <= int(limit) && from != nil {
		resp, err := kv.Range(ctx, &pb.RangeRequest{Key: from, RangeEnd: end, Limit: limit + 1, KeysOnly: true, Revision: out.Revision})
		if err != nil {
			return c.fail(s, err)
		}
		out.Revision = resp.Header.Revision
		from = nil
		for _, k := range resp.Kvs {
			if n := len(out.Entries); n > 0 && out.Entries[n-1].Dir && bytes.HasPrefix(k.Key, out.Entries[n-1].Key) {
				continue // another key of the same directory
			}
			e := entry{Key: k.Key, KV: toKV(k)}
			if i := bytes.IndexByte(k.Key[len(prefix):], separator); i >= 0 {
				e = entry{Key: k.Key[:len(prefix)+i+1], Dir: true}
			}
			out.Entries = append(out.Entries, e)
		}
		if resp.More && len(resp.Kvs) > 0 {
			last, e := resp.Kvs[len(resp.Kvs)-1].Key, out.Entries[len(out.Entries)-1]
			if e.Dir && bytes.HasPrefix(last, e.Key) {
				from = prefixEnd(e.Key) // past the directory's keys in one step
			} else {
				from = append(bytes.Clone(last), 0)
			}
			if !isAllKeys(end) && bytes.Compare(from, end) >= 0 {
				from = nil
			}
		}
	}
	if len(out.Entries) > int(limit) {
		out.Next = out.Entries[limit].Key
		out.Entries = out.Entries[:limit]
	}
	for i := range out.Entries {
		if e := &out.Entries[i]; e.Dir {
			resp, err := kv.Range(ctx, &pb.RangeRequest{Key: e.Key, RangeEnd: prefixEnd(e.Key), CountOnly: true, Revision: out.Revision})
			if err != nil {
				return c.fail(s, err)
			}
			e.Count = resp.Count
		}
	}
	return ok(out)
}

// serveKey reads one key with its value, at revision rev (0: now).
func (c *Console) serveKey(_ http.ResponseWriter, r *http.Request, s *session) reply {
	q := r.URL.Query()
	key, err1 := param64(q.Get("key"))
	rev, err2 := paramInt(q.Get("rev"))
	if err := firstErr(err1, err2); err != nil {
		return badRequest(err.Error())
	}
	if len(key) == 0 {
		return badRequest("key is empty")
	}
	ctx, cancel := asUser(r, s, rpcTimeout)
	defer cancel()
	resp, err := pb.NewKVClient(c.cfg.Conn).Range(ctx, &pb.RangeRequest{Key: key, Revision: rev})
	if err != nil {
		return c.fail(s, err)
	}
	out := struct {
		Revision int64   `json:"revision"`
		KV       *kvJSON `json:"kv"` // null: no such key at that revision
	}{Revision: resp.Header.Revision}
	if len(resp.Kvs) > 0 {
		out.KV = toKV(resp.Kvs[0])
	}
	return ok(out)
}

// prefixEnd is the range end of every key starting with prefix (etcd's
// GetPrefixRangeEnd): the empty prefix's is "\x00", every key.
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}

// isAllKeys reports whether a range end means "every key from the start
// key on".
func isAllKeys(end []byte) bool { return len(end) == 1 && end[0] == 0 }

// param64 decodes a base64 (standard) query or body parameter.
func param64(v string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("not base64: %q", v)
	}
	return b, nil
}

func paramInt(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a number: %q", v)
	}
	return n, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

//go:build linux

package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/e2e/watchcheck"
)

// The KV workload: clients doing get, put, delete and compare-and-swap on
// a few keys, recording every operation with its call and return times.
// Every second the workload moves to fresh keys (kv/<second>/<i>), so
// that one key's history — what porcupine searches, and where every
// write of unknown outcome multiplies the orders to try — stays short
// however long the run.

const (
	kvKeys      = 4 // written at once
	keyLifetime = time.Second
	opTimeout   = 2 * time.Second
)

// clock gives the history's timestamps: nanoseconds since the run began,
// from the monotonic clock.
type clock struct{ start time.Time }

func (c clock) now() int64 { return time.Since(c.start).Nanoseconds() }

// wall is the time of day of t, for reports to match with member logs.
func (c clock) wall(t int64) string {
	return c.start.Add(time.Duration(t)).UTC().Format("15:04:05.000000")
}

// history collects the operations of every KV client, and the writes
// acknowledged (for watchcheck's cross-check with the watch history).
type history struct {
	mu    sync.Mutex
	ops   []porcupine.Operation
	acked []watchcheck.Write
}

func (h *history) add(client int, in kvInput, call int64, out kvOutput, ret int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	if out.Unknown {
		return
	}
	switch {
	case in.Op == opPut || (in.Op == opCAS && out.Succeeded):
		h.acked = append(h.acked, watchcheck.Write{Rev: out.Rev, Puts: []watchcheck.KV{{Key: in.Key, Value: in.Value}}})
	case in.Op == opDelete:
		h.acked = append(h.acked, watchcheck.Write{Rev: out.Rev, Deletes: []watchcheck.Deletion{{Key: in.Key, Deleted: out.Deleted}}})
	}
}

// kvClient is one workload client: its own clientv3 client (one member's
// endpoint, or all of them), its own random source, and what it last saw
// of each key (the expectations of its compare-and-swaps).
type kvClient struct {
	id   int
	cli  *clientv3.Client
	rng  *rand.Rand
	clk  clock
	h    *history
	seen map[string]*string // nil: last seen absent
	seq  int
}

func (c *kvClient) run(ctx context.Context) {
	for ctx.Err() == nil {
		c.one(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(c.rng.IntN(10)) * time.Millisecond):
		}
	}
}

// one does one random operation on one of the current keys.
func (c *kvClient) one(ctx context.Context) {
	key := fmt.Sprintf("kv/%05d/%d", c.clk.now()/int64(keyLifetime), c.rng.IntN(kvKeys))
	c.seq++
	in := kvInput{Key: key, Value: fmt.Sprintf("c%d-%d", c.id, c.seq)}
	switch p := c.rng.IntN(100); {
	case p < 40:
		in.Op = opGet
	case p < 65:
		in.Op = opPut
	case p < 75:
		in.Op = opDelete
	default:
		in.Op = opCAS
		if v, ok := c.seen[key]; ok && v != nil {
			in.Expect = *v
		} else {
			in.Absent = true
		}
	}
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	call := c.clk.now()
	out, err := c.do(octx, in)
	ret := c.clk.now()
	if err != nil {
		if in.Op == opGet {
			return // a failed read changed nothing
		}
		out, ret = kvOutput{Unknown: true}, unknownReturn
	}
	c.h.add(c.id, in, call, out, ret)
	switch {
	case out.Unknown:
		delete(c.seen, key)
	case in.Op == opGet || (in.Op == opCAS && !out.Succeeded):
		c.remember(key, out.Exists, out.Value)
	case in.Op == opDelete:
		c.remember(key, false, "")
	default:
		c.remember(key, true, in.Value)
	}
}

func (c *kvClient) remember(key string, exists bool, value string) {
	if !exists {
		c.seen[key] = nil
		return
	}
	c.seen[key] = &value
}

func (c *kvClient) do(ctx context.Context, in kvInput) (kvOutput, error) {
	switch in.Op {
	case opGet:
		r, err := c.cli.Get(ctx, in.Key)
		if err != nil {
			return kvOutput{}, err
		}
		if len(r.Kvs) == 0 {
			return kvOutput{}, nil
		}
		return kvOutput{Exists: true, Value: string(r.Kvs[0].Value), Rev: r.Kvs[0].ModRevision}, nil
	case opPut:
		r, err := c.cli.Put(ctx, in.Key, in.Value)
		if err != nil {
			return kvOutput{}, err
		}
		return kvOutput{Rev: r.Header.Revision}, nil
	case opDelete:
		r, err := c.cli.Delete(ctx, in.Key)
		if err != nil {
			return kvOutput{}, err
		}
		return kvOutput{Rev: r.Header.Revision, Deleted: r.Deleted}, nil
	default:
		cmp := clientv3.Compare(clientv3.Value(in.Key), "=", in.Expect)
		if in.Absent {
			cmp = clientv3.Compare(clientv3.CreateRevision(in.Key), "=", 0)
		}
		r, err := c.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(in.Key, in.Value)).Else(clientv3.OpGet(in.Key)).Commit()
		if err != nil {
			return kvOutput{}, err
		}
		out := kvOutput{Succeeded: r.Succeeded, Rev: r.Header.Revision}
		if !r.Succeeded {
			out.Rev = 0
			if kvs := r.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
				out.Exists, out.Value, out.Rev = true, string(kvs[0].Value), kvs[0].ModRevision
			}
		}
		return out, nil
	}
}

package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// The load: workers that put, txn, delete, grant, attach and revoke
// without pause, each over raw gRPC to a member picked at random (no
// client retries: what a client is told is exactly what it was told),
// recording every operation and its acknowledgement in the model. Keys
// live under "f/".

const (
	opTimeout = 3 * time.Second
	leaseTTL  = 3600 // seconds: no lease expires during a run
)

type load struct {
	m       *model
	targets []*grpc.ClientConn
	gate    gate
	wg      sync.WaitGroup
	cancel  context.CancelFunc

	mu   sync.Mutex
	cond *sync.Cond
	done int // operations finished
}

type worker struct {
	id  int
	rng *rand.Rand
	seq int
	// What it may delete or revoke: its acknowledged plain puts' keys, its
	// acknowledged leases without a key and with an acknowledged one.
	deletable     []string
	bare, withKey []int64
	keyOf         map[int64]string
	kv            []pb.KVClient
	lease         []pb.LeaseClient
	target        int // this operation's member
}

// startLoad starts n workers on targets; they run until stop.
func startLoad(m *model, targets []*grpc.ClientConn, n int, seed uint64) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{m: m, targets: targets, cancel: cancel}
	l.cond = sync.NewCond(&l.mu)
	l.gate.cond = sync.NewCond(&l.gate.mu)
	for i := range n {
		w := &worker{id: i, rng: rand.New(rand.NewPCG(seed, uint64(i)+1)), keyOf: map[int64]string{}}
		for _, c := range targets {
			w.kv = append(w.kv, pb.NewKVClient(c))
			w.lease = append(w.lease, pb.NewLeaseClient(c))
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for l.gate.enter(ctx) {
				if !l.step(ctx, w) {
					// A member down answers at once: pace the retries.
					time.Sleep(10 * time.Millisecond)
				}
				l.gate.exit()
				l.mu.Lock()
				l.done++
				l.cond.Broadcast()
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) stop() {
	l.cancel()
	l.gate.resume()
	l.wg.Wait()
}

// pause waits for the operations under way to finish and holds the
// workers until resume.
func (l *load) pause()  { l.gate.pause() }
func (l *load) resume() { l.gate.resume() }

// waitOps waits until the workers have finished n more operations (or
// ctx ends).
func (l *load) waitOps(ctx context.Context, n int) {
	stop := context.AfterFunc(ctx, func() {
		l.mu.Lock()
		l.cond.Broadcast()
		l.mu.Unlock()
	})
	defer stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for want := l.done + n; l.done < want && ctx.Err() == nil; {
		l.cond.Wait()
	}
}

// gate lets the workers through until paused.
type gate struct {
	mu     sync.Mutex
	cond   *sync.Cond
	paused bool
	active int
}

func (g *gate) enter(ctx context.Context) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.paused && ctx.Err() == nil {
		g.cond.Wait()
	}
	if ctx.Err() != nil {
		return false
	}
	g.active++
	return true
}

func (g *gate) exit() {
	g.mu.Lock()
	g.active--
	g.cond.Broadcast()
	g.mu.Unlock()
}

func (g *gate) pause() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.paused = true
	for g.active > 0 {
		g.cond.Wait()
	}
}

func (g *gate) resume() {
	g.mu.Lock()
	g.paused = false
	g.cond.Broadcast()
	g.mu.Unlock()
}

// step runs one operation; false: it failed.
func (l *load) step(ctx context.Context, w *worker) bool {
	w.target = w.rng.IntN(len(l.targets))
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	w.seq++
	key := fmt.Sprintf("f/%d/%d", w.id, w.seq)
	val := fmt.Sprintf("v%d.%d", w.id, w.seq)
	switch p := w.rng.IntN(100); {
	case p < 15 && len(w.deletable) > 0:
		return l.delete(ctx, w)
	case p < 30 && len(w.deletable) > 0:
		return l.txn(ctx, w, key, val, true)
	case p < 45:
		return l.txn(ctx, w, key, val, false)
	case p < 55:
		return l.grant(ctx, w)
	case p < 65 && len(w.bare) > 0:
		return l.leasedPut(ctx, w, key, val)
	case p < 72 && len(w.bare)+len(w.withKey) > 0:
		return l.revoke(ctx, w)
	default:
		return l.put(ctx, w, key, val)
	}
}

// take removes and returns a random element of *s.
func take[T any](rng *rand.Rand, s *[]T) T {
	i := rng.IntN(len(*s))
	v := (*s)[i]
	(*s)[i] = (*s)[len(*s)-1]
	*s = (*s)[:len(*s)-1]
	return v
}

func (l *load) put(ctx context.Context, w *worker, key, val string) bool {
	o := &op{kind: opPut, writes: []kvWrite{{key, val}}}
	l.m.issue(o)
	r, err := w.kv[w.target].Put(ctx, &pb.PutRequest{Key: []byte(key), Value: []byte(val)})
	if err != nil {
		l.m.failed(o, err)
		return false
	}
	if l.m.acked(o, r.Header.Revision) {
		w.deletable = append(w.deletable, key)
	}
	return true
}

func (l *load) leasedPut(ctx context.Context, w *worker, key, val string) bool {
	id := take(w.rng, &w.bare)
	o := &op{kind: opLeasedPut, writes: []kvWrite{{key, val}}, lease: id}
	l.m.issue(o)
	r, err := w.kv[w.target].Put(ctx, &pb.PutRequest{Key: []byte(key), Value: []byte(val), Lease: id})
	if err != nil {
		l.m.failed(o, err) // the lease is dropped: its key's fate is unknown
		return false
	}
	if l.m.acked(o, r.Header.Revision) {
		w.withKey = append(w.withKey, id)
		w.keyOf[id] = key
	}
	return true
}

// txn puts three new keys, and deletes one of the worker's earlier ones
// when del is set.
func (l *load) txn(ctx context.Context, w *worker, key, val string, del bool) bool {
	o := &op{kind: opTxn}
	req := &pb.TxnRequest{Compare: []*pb.Compare{{
		Key: []byte(key + "/a"), Target: pb.Compare_CREATE, Result: pb.Compare_EQUAL,
		TargetUnion: &pb.Compare_CreateRevision{CreateRevision: 0},
	}}}
	for _, s := range []string{"/a", "/b", "/c"} {
		o.writes = append(o.writes, kvWrite{key + s, val + s})
		req.Success = append(req.Success, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{
			RequestPut: &pb.PutRequest{Key: []byte(key + s), Value: []byte(val + s)}}})
	}
	if del {
		o.del = take(w.rng, &w.deletable)
		req.Success = append(req.Success, &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{
			RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(o.del)}}})
	}
	l.m.issue(o)
	r, err := w.kv[w.target].Txn(ctx, req)
	if err != nil {
		l.m.failed(o, err)
		return false
	}
	if l.m.acked(o, r.Header.Revision) && !r.Succeeded {
		l.m.wrong(o, "the txn's compare failed: its key existed already")
	}
	return true
}

func (l *load) delete(ctx context.Context, w *worker) bool {
	o := &op{kind: opDelete, del: take(w.rng, &w.deletable)}
	l.m.issue(o)
	r, err := w.kv[w.target].DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte(o.del)})
	if err != nil {
		l.m.failed(o, err)
		return false
	}
	if l.m.acked(o, r.Header.Revision) && r.Deleted != 1 {
		l.m.wrong(o, fmt.Sprintf("deleted %d keys, not 1", r.Deleted))
	}
	return true
}

func (l *load) grant(ctx context.Context, w *worker) bool {
	id := int64(w.id+1)<<40 | int64(w.seq)
	o := &op{kind: opGrant, lease: id}
	l.m.issue(o)
	r, err := w.lease[w.target].LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: id, TTL: leaseTTL})
	if err == nil && r.Error != "" {
		l.m.wrong(o, "granted with error "+r.Error)
	}
	if err != nil {
		l.m.failed(o, err)
		return false
	}
	if l.m.acked(o, r.Header.Revision) {
		w.bare = append(w.bare, id)
	}
	return true
}

func (l *load) revoke(ctx context.Context, w *worker) bool {
	var id int64
	if i := w.rng.IntN(len(w.bare) + len(w.withKey)); i < len(w.bare) {
		id = take(w.rng, &w.bare)
	} else {
		id = take(w.rng, &w.withKey)
	}
	o := &op{kind: opRevoke, lease: id, del: w.keyOf[id]}
	l.m.issue(o)
	r, err := w.lease[w.target].LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: id})
	if err != nil {
		l.m.failed(o, err)
		return false
	}
	l.m.acked(o, r.Header.Revision)
	return true
}

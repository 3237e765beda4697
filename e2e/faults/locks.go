//go:build linux

package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/metastore/metastore/e2e/watchcheck"
)

// Lock holders: concurrency.Mutex on mutexPrefix, each holding the lock
// for a few fenced increments of counterKey. A fenced write is a txn that
// puts only while the holder's lock key still exists with the revision it
// was created at (Mutex.IsOwner): the lock's revision. The counter's value
// is "<n> <holder's lock key>".
//
// What must hold, checked against the watch history (the truth, which
// also holds the writes whose answer was lost):
//   - holders never overlap: at the revision a Lock returned at, and at
//     every revision the counter was written at, the holder's key is the
//     lock's owner — the live key under the prefix with the lowest create
//     revision;
//   - the counter never goes backwards: each write's n is above the last.

const (
	mutexPrefix = "mutex/"
	counterKey  = "fenced/counter"
	lockTTL     = 3 // seconds; the session's lease
)

// acquisition is one Lock that returned.
type acquisition struct {
	holder string
	key    string
	rev    int64 // the header revision of the Lock
}

type lockLog struct {
	mu     sync.Mutex
	acqs   []acquisition
	writes int // fenced writes acknowledged
	lost   int // holdings that ended with the session gone
}

func (l *lockLog) acquired(a acquisition) {
	l.mu.Lock()
	l.acqs = append(l.acqs, a)
	l.mu.Unlock()
}

type lockHolder struct {
	name string
	cli  *clientv3.Client
	rng  *rand.Rand
	log  *lockLog
}

func (h *lockHolder) run(ctx context.Context) {
	var sess *concurrency.Session
	defer func() {
		if sess != nil {
			_ = sess.Close()
		}
	}()
	for ctx.Err() == nil {
		if sess != nil {
			select {
			case <-sess.Done(): // its lease is gone
				sess = nil
			default:
			}
		}
		if sess == nil {
			// The lease is granted here, under a deadline: NewSession
			// would wait for it as long as ctx lives.
			gctx, cancel := context.WithTimeout(ctx, opTimeout)
			g, err := h.cli.Grant(gctx, lockTTL)
			cancel()
			if err == nil {
				sess, err = concurrency.NewSession(h.cli, concurrency.WithLease(g.ID), concurrency.WithContext(ctx))
			}
			if err != nil {
				sess = nil
				h.pause(ctx)
				continue
			}
		}
		h.hold(ctx, sess)
		h.pause(ctx)
	}
}

func (h *lockHolder) pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Duration(20+h.rng.IntN(50)) * time.Millisecond):
	}
}

// hold takes the lock, makes one to three fenced increments, and unlocks.
func (h *lockHolder) hold(ctx context.Context, sess *concurrency.Session) {
	m := concurrency.NewMutex(sess, mutexPrefix)
	lctx, cancel := context.WithTimeout(ctx, 3*opTimeout)
	err := m.Lock(lctx)
	cancel()
	if err != nil {
		return
	}
	h.log.acquired(acquisition{holder: h.name, key: m.Key(), rev: m.Header().Revision})
	defer func() {
		uctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		_ = m.Unlock(uctx)
		cancel()
	}()
	for range 1 + h.rng.IntN(3) {
		if err := h.increment(ctx, m); err != nil {
			if errors.Is(err, errNotOwner) {
				h.log.mu.Lock()
				h.log.lost++
				h.log.mu.Unlock()
			}
			return
		}
	}
}

var errNotOwner = errors.New("fenced write refused: the lock key is gone")

func (h *lockHolder) increment(ctx context.Context, m *concurrency.Mutex) error {
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	g, err := h.cli.Get(octx, counterKey)
	if err != nil {
		return err
	}
	n := int64(0)
	if len(g.Kvs) > 0 {
		if n, err = counterValue(g.Kvs[0].Value); err != nil {
			return err
		}
	}
	r, err := h.cli.Txn(octx).If(m.IsOwner()).
		Then(clientv3.OpPut(counterKey, fmt.Sprintf("%d %s", n+1, m.Key()))).Commit()
	if err != nil {
		return err
	}
	if !r.Succeeded {
		return errNotOwner
	}
	h.log.mu.Lock()
	h.log.writes++
	h.log.mu.Unlock()
	return nil
}

func counterValue(v []byte) (int64, error) {
	n, _, _ := strings.Cut(string(v), " ")
	return strconv.ParseInt(n, 10, 64)
}

// checkLocks replays the history's lock keys and counter writes and
// returns every broken promise.
func checkLocks(h *watchcheck.History, acqs []acquisition) []error {
	var errs []error
	fail := func(format string, args ...any) {
		if len(errs) < 20 {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	byRev := map[int64][]acquisition{}
	for _, a := range acqs {
		byRev[a.rev] = append(byRev[a.rev], a)
	}
	live := map[string]int64{} // lock key -> create revision
	owner := func() string {
		best, bestRev := "", int64(0)
		for k, c := range live {
			if best == "" || c < bestRev {
				best, bestRev = k, c
			}
		}
		return best
	}
	var last int64
	var lastRev int64
	for rev := h.From; rev <= h.To; rev++ {
		for _, ev := range h.Events(rev) {
			key := string(ev.Kv.Key)
			switch {
			case strings.HasPrefix(key, mutexPrefix):
				if ev.Type == mvccpb.Event_DELETE {
					delete(live, key)
				} else {
					live[key] = ev.Kv.CreateRevision
				}
			case key == counterKey && ev.Type == mvccpb.Event_PUT:
				n, err := counterValue(ev.Kv.Value)
				_, writer, _ := strings.Cut(string(ev.Kv.Value), " ")
				if err != nil {
					fail("counter written at revision %d with %q", rev, ev.Kv.Value)
					continue
				}
				if n <= last {
					fail("the fenced counter went backwards: %d at revision %d after %d at revision %d", n, rev, last, lastRev)
				}
				if o := owner(); o != writer {
					fail("fenced write at revision %d by %s while the lock's owner was %q (live keys %v)", rev, writer, o, sortedKeys(live))
				}
				last, lastRev = n, rev
			}
		}
		for _, a := range byRev[rev] {
			if o := owner(); o != a.key {
				fail("%s's Lock returned at revision %d holding %s, but the owner then was %q (live keys %v)",
					a.holder, rev, a.key, o, sortedKeys(live))
			}
		}
	}
	for _, a := range acqs {
		if a.rev < h.From || a.rev > h.To {
			fail("%s's Lock returned at revision %d, outside the history [%d,%d]", a.holder, a.rev, h.From, h.To)
		}
	}
	return errs
}

func sortedKeys(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

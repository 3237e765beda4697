//go:build linux

package faults

import (
	"bufio"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/e2e/watchcheck"
)

// The suite's own machinery: the front cuts what it is told to, and each
// checker rejects the histories it exists to reject.

// echoServer answers every line with itself.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// through dials f and returns the connection and a line reader.
func through(t *testing.T, f *front) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", f.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, bufio.NewReader(c)
}

func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, line string) {
	t.Helper()
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadString('\n')
	if err != nil || got != line+"\n" {
		t.Fatalf("echo of %q: %q, %v", line, got, err)
	}
}

// TestFrontHoldsTheCutMembersLinks: the front names the test process (a
// "member" here) as the owner of the connection it opened, holds what it
// sends while it is cut, and delivers it on Heal; a connection from a
// process it does not know is never held.
func TestFrontHoldsTheCutMembersLinks(t *testing.T) {
	target := echoServer(t)
	me := map[int]string{os.Getpid(): "me"}
	f, err := newFront(target, func(c net.Conn) string { return connOwner(c, me) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	c, r := through(t, f)
	roundTrip(t, c, r, "before")

	f.Cut("me")
	if _, err := c.Write([]byte("during\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if got, err := r.ReadString('\n'); err == nil {
		t.Fatalf("read %q through a cut link", got)
	}
	// A connection opened during the cut reaches nothing either.
	c2, r2 := through(t, f)
	if _, err := c2.Write([]byte("new\n")); err != nil {
		t.Fatal(err)
	}
	_ = c2.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if got, err := r2.ReadString('\n'); err == nil {
		t.Fatalf("read %q through a link opened during the cut", got)
	}

	f.Heal()
	for _, cr := range []struct {
		c    net.Conn
		r    *bufio.Reader
		want string
	}{{c, r, "during"}, {c2, r2, "new"}} {
		_ = cr.c.SetReadDeadline(time.Time{})
		// The bufio reader kept what it had read before the deadline.
		if got, err := cr.r.ReadString('\n'); err != nil || strings.TrimSuffix(got, "\n") != cr.want {
			t.Fatalf("after Heal: %q, %v; want %q", got, err, cr.want)
		}
	}

	stranger, err := newFront(target, func(c net.Conn) string { return connOwner(c, map[int]string{1: "init"}) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stranger.Close)
	stranger.Cut("me")
	stranger.Cut("")
	c3, r3 := through(t, stranger)
	roundTrip(t, c3, r3, "unknown source passes")
}

func op(call, ret int64, in kvInput, out kvOutput) porcupine.Operation {
	return porcupine.Operation{Input: in, Call: call, Output: out, Return: ret}
}

var (
	putA    = kvInput{Op: opPut, Key: "k", Value: "a"}
	putB    = kvInput{Op: opPut, Key: "k", Value: "b"}
	getK    = kvInput{Op: opGet, Key: "k"}
	delK    = kvInput{Op: opDelete, Key: "k"}
	casAtoB = kvInput{Op: opCAS, Key: "k", Expect: "a", Value: "b"}
)

// TestModelJudgesHistories: the KV model accepts what etcd may answer and
// rejects stale reads, lost writes, revisions out of order and swaps that
// could not have succeeded.
func TestModelJudgesHistories(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []porcupine.Operation
		ok   bool
	}{
		{"read your write", []porcupine.Operation{
			op(0, 10, putA, kvOutput{Rev: 5}),
			op(20, 30, getK, kvOutput{Exists: true, Value: "a", Rev: 5}),
		}, true},
		{"stale read after an acknowledged put", []porcupine.Operation{
			op(0, 10, putA, kvOutput{Rev: 5}),
			op(20, 30, getK, kvOutput{}),
		}, false},
		{"read of a concurrent put, either way", []porcupine.Operation{
			op(0, 30, putA, kvOutput{Rev: 5}),
			op(10, 20, getK, kvOutput{}),
			op(11, 21, getK, kvOutput{Exists: true, Value: "a", Rev: 5}),
		}, true},
		{"a put seen, then unseen", []porcupine.Operation{
			op(0, 100, putA, kvOutput{Rev: 5}),
			op(10, 20, getK, kvOutput{Exists: true, Value: "a", Rev: 5}),
			op(30, 40, getK, kvOutput{}),
		}, false},
		{"wrong mod revision", []porcupine.Operation{
			op(0, 10, putA, kvOutput{Rev: 5}),
			op(20, 30, getK, kvOutput{Exists: true, Value: "a", Rev: 6}),
		}, false},
		{"revisions going backwards", []porcupine.Operation{
			op(0, 10, putA, kvOutput{Rev: 5}),
			op(20, 30, putB, kvOutput{Rev: 4}),
		}, false},
		{"a write of unknown outcome may show up later", []porcupine.Operation{
			op(0, unknownReturn, putA, kvOutput{Unknown: true}),
			op(20, 30, getK, kvOutput{}),
			op(40, 50, getK, kvOutput{Exists: true, Value: "a", Rev: 9}),
		}, true},
		{"a read of a value nobody wrote", []porcupine.Operation{
			op(0, unknownReturn, putA, kvOutput{Unknown: true}),
			op(40, 50, getK, kvOutput{Exists: true, Value: "b", Rev: 9}),
		}, false},
		{"a swap that found its value", []porcupine.Operation{
			op(0, 10, putA, kvOutput{Rev: 5}),
			op(20, 30, casAtoB, kvOutput{Succeeded: true, Rev: 7}),
			op(40, 50, getK, kvOutput{Exists: true, Value: "b", Rev: 7}),
		}, true},
		{"a swap that succeeded on a deleted key", []porcupine.Operation{
			op(0, 10, putA, kvOutput{Rev: 5}),
			op(20, 30, delK, kvOutput{Rev: 6, Deleted: 1}),
			op(40, 50, casAtoB, kvOutput{Succeeded: true, Rev: 7}),
		}, false},
		{"a swap that failed although its value was there", []porcupine.Operation{
			op(0, 10, putA, kvOutput{Rev: 5}),
			op(20, 30, casAtoB, kvOutput{Exists: true, Value: "a", Rev: 5}),
		}, false},
		{"a delete of nothing after an acknowledged put", []porcupine.Operation{
			op(0, 10, putA, kvOutput{Rev: 5}),
			op(20, 30, delK, kvOutput{Rev: 5, Deleted: 0}),
		}, false},
	} {
		res, _, _ := checkLinearizable(tc.ops, 10*time.Second)
		if got := res == porcupine.Ok; got != tc.ok {
			t.Errorf("%s: linearizable = %v (%s), want %v", tc.name, got, res, tc.ok)
		}
	}
}

// lockHistory builds a watch history from per-revision events.
func lockHistory(t *testing.T, evs ...*mvccpb.Event) *watchcheck.History {
	t.Helper()
	h := watchcheck.NewHistory(2)
	if err := h.Add(evs...); err != nil {
		t.Fatal(err)
	}
	h.Extend(evs[len(evs)-1].Kv.ModRevision)
	return h
}

func putEv(key, value string, create, rev int64) *mvccpb.Event {
	return &mvccpb.Event{Type: mvccpb.Event_PUT,
		Kv: &mvccpb.KeyValue{Key: []byte(key), Value: []byte(value), CreateRevision: create, ModRevision: rev}}
}

func delEv(key string, rev int64) *mvccpb.Event {
	return &mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte(key), ModRevision: rev}}
}

// TestCheckLocksFindsOverlaps: a fenced write or a Lock that returned
// while another key owned the lock, and a counter that went backwards,
// are each reported; a clean hand-over is not.
func TestCheckLocksFindsOverlaps(t *testing.T) {
	const a, b = mutexPrefix + "a", mutexPrefix + "b"
	clean := []*mvccpb.Event{
		putEv(a, "", 2, 2),              // a locks
		putEv(b, "", 3, 3),              // b waits
		putEv(counterKey, "1 "+a, 4, 4), // a writes
		delEv(a, 5),                     // a unlocks
		putEv(counterKey, "2 "+b, 4, 6), // b writes
	}
	acqs := []acquisition{{holder: "A", key: a, rev: 2}, {holder: "B", key: b, rev: 5}}
	if errs := checkLocks(lockHistory(t, clean...), acqs); len(errs) > 0 {
		t.Fatalf("clean hand-over: %v", errors.Join(errs...))
	}
	for _, tc := range []struct {
		name string
		evs  []*mvccpb.Event
		acqs []acquisition
		want string
	}{
		{"write by the waiter", []*mvccpb.Event{
			putEv(a, "", 2, 2), putEv(b, "", 3, 3), putEv(counterKey, "1 "+b, 4, 4),
		}, acqs[:1], "fenced write at revision 4 by " + b},
		{"Lock returned early", clean, []acquisition{{holder: "B", key: b, rev: 4}}, "B's Lock returned at revision 4"},
		{"counter backwards", []*mvccpb.Event{
			putEv(a, "", 2, 2), putEv(counterKey, "2 "+a, 3, 3), putEv(counterKey, "1 "+a, 3, 4),
		}, acqs[:1], "went backwards: 1 at revision 4 after 2"},
	} {
		errs := checkLocks(lockHistory(t, tc.evs...), tc.acqs)
		if err := errors.Join(errs...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// TestCheckLeasesFindsEarlyEnds: a lease whose key was seen gone, or
// that a keep-alive said was not found, before the time a grant or
// keep-alive promised is reported, unless a revoke was asked first; one
// seen gone after it is not.
func TestCheckLeasesFindsEarlyEnds(t *testing.T) {
	s := int64(time.Second)
	// Granted at 1s with a TTL of 4s, kept alive at 5s: it lives until 9s.
	kept := []renewal{{sent: 1 * s, ttl: 4}, {sent: 5 * s, ttl: 4}}
	for _, tc := range []struct {
		name string
		life leaseLife
		bad  bool
	}{
		{"gone after its TTL", leaseLife{granted: kept, putAt: s, gone: []int64{10 * s}}, false},
		{"gone before a keep-alive's TTL", leaseLife{granted: kept, putAt: s, gone: []int64{8 * s}}, true},
		{"renewed after it was seen gone", leaseLife{granted: kept, putAt: s, gone: []int64{4 * s}}, true},
		{"gone after a revoke", leaseLife{granted: kept, putAt: s, revoke: 7 * s, gone: []int64{8 * s}}, false},
		{"not found after its TTL", leaseLife{granted: kept, notFound: 10 * s}, false},
		{"not found before a keep-alive's TTL", leaseLife{granted: kept, notFound: 8 * s}, true},
	} {
		if errs := checkLeases([]*leaseLife{&tc.life}, clock{start: time.Now()}); (len(errs) > 0) != tc.bad {
			t.Errorf("%s: %v, want an error: %v", tc.name, errs, tc.bad)
		}
	}
}

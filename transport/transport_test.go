package transport

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) {
	// Shrink the timeouts before any goroutine reads them.
	connectTimeout = time.Second
	writeTimeout = 2 * time.Second
	probeInterval = 100 * time.Millisecond
	os.Exit(m.Run())
}

// member is one Transport served by an httptest server, recording what
// its callbacks see.
type member struct {
	id   uint64
	tr   *Transport
	srv  *httptest.Server
	url  string
	logs *observer.ObservedLogs

	mu        sync.Mutex
	delivered []*raftpb.Message
	events    []string // ordered: "recv-snap", "deliver-snap"
	snapData  [][]byte
	snapStat  []bool // failure flags reported
	unreach   map[uint64]int
	removedBy []uint64
}

type memberOpt func(*member, *Config)

func newMember(t *testing.T, id, cluster uint64, opts ...memberOpt) *member {
	t.Helper()
	m := buildMember(id, cluster, opts...)
	t.Cleanup(func() {
		m.close()
		if t.Failed() {
			for _, e := range m.logs.All() {
				t.Logf("member %d: %s %s %v", id, e.Level, e.Message, e.ContextMap())
			}
		}
	})
	return m
}

func buildMember(id, cluster uint64, opts ...memberOpt) *member {
	m := &member{id: id, unreach: map[uint64]int{}}
	core, logs := observer.New(zapcore.InfoLevel)
	m.logs = logs
	cfg := Config{
		ID:        id,
		ClusterID: cluster,
		Logger:    zap.New(core),
		Deliver: func(msg *raftpb.Message) {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.delivered = append(m.delivered, msg)
			if msg.GetType() == raftpb.MsgSnap {
				m.events = append(m.events, "deliver-snap")
			}
		},
		Unreachable: func(to uint64) {
			m.mu.Lock()
			m.unreach[to]++
			m.mu.Unlock()
		},
		SnapshotStatus: func(to uint64, failure bool) {
			m.mu.Lock()
			m.snapStat = append(m.snapStat, failure)
			m.mu.Unlock()
		},
		Removed: func(by uint64) {
			m.mu.Lock()
			m.removedBy = append(m.removedBy, by)
			m.mu.Unlock()
		},
	}
	for _, o := range opts {
		o(m, &cfg)
	}
	m.tr = New(cfg)
	m.srv = httptest.NewServer(m.tr.Handler())
	m.url = m.srv.URL
	return m
}

func (m *member) close() {
	m.tr.Stop()
	if m.srv != nil {
		m.srv.CloseClientConnections()
		m.srv.Close()
	}
}

func (m *member) deliveredCopy() []*raftpb.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*raftpb.Message(nil), m.delivered...)
}

func (m *member) unreachable(id uint64) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.unreach[id]
}

func (m *member) snapStatuses() []bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]bool(nil), m.snapStat...)
}

func msg(typ raftpb.MessageType, from, to, index uint64) *raftpb.Message {
	return &raftpb.Message{Type: typ.Enum(), From: proto.Uint64(from), To: proto.Uint64(to), Index: proto.Uint64(index), Term: proto.Uint64(1)}
}

func app(from, to, index uint64, payload int) *raftpb.Message {
	m := msg(raftpb.MsgApp, from, to, index)
	if payload > 0 {
		m.Entries = []*raftpb.Entry{{Index: proto.Uint64(index), Term: proto.Uint64(1), Data: bytes.Repeat([]byte{byte(index)}, payload)}}
	}
	return m
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fromIndexes returns the indexes delivered from `from`, in delivery order.
func fromIndexes(msgs []*raftpb.Message, from uint64) []uint64 {
	var out []uint64
	for _, m := range msgs {
		if m.GetFrom() == from && m.GetType() == raftpb.MsgApp {
			out = append(out, m.GetIndex())
		}
	}
	return out
}

func checkInOrder(t *testing.T, got []uint64, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("got %d messages, want %d", len(got), n)
	}
	for i, idx := range got {
		if idx != uint64(i+1) {
			t.Fatalf("message %d has index %d: out of order", i, idx)
		}
	}
}

// sendPaced sends n MsgApp from a to b in Send calls of `per`, waiting for
// a's queue to b to have room so nothing is dropped.
func sendPaced(t *testing.T, a *member, to uint64, from, n, per, payload int) {
	t.Helper()
	p := (*a.tr.peers.Load())[to]
	for i := 0; i < n; i += per {
		eventually(t, 10*time.Second, "queue room", func() bool { return len(p.q) < queueSize-per })
		var batch []*raftpb.Message
		for j := i; j < min(i+per, n); j++ {
			batch = append(batch, app(a.id, to, uint64(from+j+1), payload))
		}
		a.tr.Send(batch)
	}
}

func TestDeliverInOrderMesh(t *testing.T) {
	const n = 2000
	ms := []*member{newMember(t, 1, 7), newMember(t, 2, 7), newMember(t, 3, 7)}
	for _, a := range ms {
		for _, b := range ms {
			a.tr.AddPeer(b.id, []string{b.url}) // AddPeer(self) is ignored
		}
		a.tr.AddPeer(ms[0].id, []string{ms[0].url}) // idempotent
	}
	var wg sync.WaitGroup
	for _, a := range ms {
		for _, b := range ms {
			if a != b {
				wg.Add(1)
				go func() {
					defer wg.Done()
					sendPaced(t, a, b.id, 0, n, 50, 100)
				}()
			}
		}
	}
	wg.Wait()
	for _, b := range ms {
		eventually(t, 10*time.Second, "all delivered", func() bool { return len(b.deliveredCopy()) == 2*n })
		for _, a := range ms {
			if a != b {
				checkInOrder(t, fromIndexes(b.deliveredCopy(), a.id), n)
				if a.tr.ActiveSince(b.id).IsZero() {
					t.Fatalf("%d -> %d: ActiveSince zero on a live stream", a.id, b.id)
				}
			}
		}
	}
}

func TestBatching(t *testing.T) {
	const n = 50000
	a, b := newMember(t, 1, 7), newMember(t, 2, 7)
	a.tr.AddPeer(2, []string{b.url})
	sendPaced(t, a, 2, 0, n, 1000, 16)
	eventually(t, 15*time.Second, "all delivered", func() bool { return len(b.deliveredCopy()) == n })
	checkInOrder(t, fromIndexes(b.deliveredCopy(), 1), n)
	flushes := (*a.tr.peers.Load())[2].flushes.Load()
	t.Logf("%d messages in %d flushes", n, flushes)
	if flushes >= n/2 {
		t.Fatalf("%d flushes for %d messages: no batching", flushes, n)
	}
	// Large messages (raft's 1 MiB MsgApp) go through as well.
	sendPaced(t, a, 2, n, 8, 1, 1<<20)
	eventually(t, 15*time.Second, "large delivered", func() bool { return len(b.deliveredCopy()) == n+8 })
	checkInOrder(t, fromIndexes(b.deliveredCopy(), 1), n+8)
	if got := b.deliveredCopy()[n+7]; len(got.GetEntries()[0].GetData()) != 1<<20 {
		t.Fatalf("large entry: %d bytes", len(got.GetEntries()[0].GetData()))
	}
}

func TestClusterIDMismatch(t *testing.T) {
	a, b := newMember(t, 1, 7), newMember(t, 2, 8)
	a.tr.AddPeer(2, []string{b.url})
	a.tr.Send([]*raftpb.Message{app(1, 2, 1, 0)})
	eventually(t, 5*time.Second, "unreachable reported twice", func() bool { return a.unreachable(2) >= 2 })
	if got := b.deliveredCopy(); len(got) != 0 {
		t.Fatalf("delivered %d messages across clusters", len(got))
	}
	if !a.tr.ActiveSince(2).IsZero() {
		t.Fatal("ActiveSince set for a refused stream")
	}
	if b.logs.FilterMessage("request cluster ID mismatch").Len() == 0 {
		t.Fatal(`no "request cluster ID mismatch" log line`)
	}
	e := b.logs.FilterMessage("request cluster ID mismatch").All()[0].ContextMap()
	if e["local-member-cluster-id"] != "8" || e["remote-peer-cluster-id"] != "7" {
		t.Fatalf("log fields %v", e)
	}
	code, body := rawPost(t, b.url+pathStream, 7, 1, 2, nil)
	if code != http.StatusPreconditionFailed || !strings.Contains(body, "cluster ID mismatch") {
		t.Fatalf("got %d %q", code, body)
	}
}

func TestToMismatch(t *testing.T) {
	b := newMember(t, 2, 7)
	code, body := rawPost(t, b.url+pathStream, 7, 1, 3, nil)
	if code != http.StatusPreconditionFailed || !strings.Contains(body, "to member mismatch") {
		t.Fatalf("got %d %q", code, body)
	}
	code, _ = rawPost(t, b.url+pathSnapshot, 7, 1, 3, nil)
	if code != http.StatusPreconditionFailed {
		t.Fatalf("snapshot: got %d", code)
	}
}

func TestRemovedMember(t *testing.T) {
	a := newMember(t, 1, 7)
	b := newMember(t, 2, 7, func(_ *member, c *Config) { c.IsRemoved = func(id uint64) bool { return id == 1 } })
	a.tr.AddPeer(2, []string{b.url})
	a.tr.Send([]*raftpb.Message{app(1, 2, 1, 0)})
	eventually(t, 5*time.Second, "Removed callback", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.removedBy) > 0 && a.removedBy[0] == 2
	})
	if got := b.deliveredCopy(); len(got) != 0 {
		t.Fatalf("delivered %d messages from a removed member", len(got))
	}
	code, body := rawPost(t, b.url+pathStream, 7, 1, 2, nil)
	if code != http.StatusGone || strings.TrimSpace(body) != "the member has been permanently removed from the cluster" {
		t.Fatalf("got %d %q", code, body)
	}
}

// rawPost sends one request with the transport's headers and returns the
// status and body.
func rawPost(t *testing.T, url string, cluster, from, to uint64, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(hdrClusterID, idString(cluster))
	req.Header.Set(hdrFrom, idString(from))
	req.Header.Set(hdrTo, idString(to))
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestMalformedStream(t *testing.T) {
	b := newMember(t, 2, 7)
	good, _ := appendFrame(nil, app(1, 2, 1, 0))
	for name, body := range map[string][]byte{
		"huge length": append(append([]byte(nil), good...), binary.AppendUvarint(nil, 65<<20)...),
		"garbage":     append(append([]byte(nil), good...), 5, 0xff, 0xff, 0xff, 0xff, 0xff),
		"truncated":   append(append([]byte(nil), good...), 10, 1, 2),
		"wrong from":  mustFrame(t, good, app(3, 2, 2, 0)),
	} {
		t.Run(name, func(t *testing.T) {
			before := len(b.deliveredCopy())
			code, _ := rawPost(t, b.url+pathStream, 7, 1, 2, body)
			if code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			// Only the good first frame was delivered; the stream was closed.
			if got := b.deliveredCopy(); len(got) != before+1 {
				t.Fatalf("delivered %d, want 1", len(got)-before)
			}
		})
	}
	resp, err := http.Get(b.url + pathProbe)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get(hdrMemberID) != "2" {
		t.Fatalf("probe after malformed streams: %d %q", resp.StatusCode, resp.Header.Get(hdrMemberID))
	}
}

func mustFrame(t *testing.T, prefix []byte, m *raftpb.Message) []byte {
	b, err := appendFrame(append([]byte(nil), prefix...), m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestProbe(t *testing.T) {
	b := newMember(t, 0xabc, 7)
	resp, err := http.Get(b.url + pathProbe)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get(hdrMemberID) != "abc" || resp.Header.Get(hdrClusterID) != "7" {
		t.Fatalf("probe: %d %v", resp.StatusCode, resp.Header)
	}
	b.tr.Stop()
	resp, err = http.Get(b.url + pathProbe)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("probe after Stop: %d", resp.StatusCode)
	}
	if code, _ := rawPost(t, b.url+pathStream, 7, 1, 0xabc, nil); code != http.StatusServiceUnavailable {
		t.Fatalf("stream after Stop: %d", code)
	}
}

func TestReconnect(t *testing.T) {
	a, b := newMember(t, 1, 7), newMember(t, 2, 7)
	addr := b.srv.Listener.Addr().String()
	a.tr.AddPeer(2, []string{b.url})
	a.tr.Send([]*raftpb.Message{app(1, 2, 1, 0), app(1, 2, 2, 0)})
	eventually(t, 5*time.Second, "first delivery", func() bool { return len(b.deliveredCopy()) == 2 })
	up := a.tr.ActiveSince(2)
	if up.IsZero() {
		t.Fatal("ActiveSince zero while connected")
	}

	// B goes down: its listener and every connection.
	b.srv.CloseClientConnections()
	b.srv.Close()
	b.srv = nil
	eventually(t, 5*time.Second, "stream noticed down", func() bool { return a.tr.ActiveSince(2).IsZero() })
	u0 := a.unreachable(2)
	a.tr.Send([]*raftpb.Message{app(1, 2, 3, 0)})
	eventually(t, 5*time.Second, "unreachable while down", func() bool { return a.unreachable(2) > u0+1 })

	// B comes back on the same address.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen again on %s: %v", addr, err)
	}
	srv := httptest.NewUnstartedServer(b.tr.Handler())
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	b.srv = srv
	eventually(t, 5*time.Second, "reconnected", func() bool { return !a.tr.ActiveSince(2).IsZero() })
	if !a.tr.ActiveSince(2).After(up) {
		t.Fatal("ActiveSince did not move to the new stream")
	}
	a.tr.Send([]*raftpb.Message{app(1, 2, 4, 0), app(1, 2, 5, 0)})
	eventually(t, 5*time.Second, "delivery resumed", func() bool {
		got := fromIndexes(b.deliveredCopy(), 1)
		return len(got) > 0 && got[len(got)-1] == 5
	})
	// Message 3 was queued while B was down: it went out (before 4) on the
	// new stream.
	got := fromIndexes(b.deliveredCopy(), 1)
	if fmt.Sprint(got) != "[1 2 3 4 5]" {
		t.Fatalf("delivered %v", got)
	}
}

func TestSendNeverBlocks(t *testing.T) {
	// A refused port, and a black hole that accepts and never answers.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String()
	dead.Close()
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	var conns []net.Conn
	var connsMu sync.Mutex
	go func() {
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			connsMu.Lock()
			conns = append(conns, c)
			connsMu.Unlock()
		}
	}()
	defer func() {
		connsMu.Lock()
		for _, c := range conns {
			c.Close()
		}
		connsMu.Unlock()
	}()

	a := newMember(t, 1, 7)
	a.tr.AddPeer(2, []string{deadURL})
	a.tr.AddPeer(3, []string{"http://" + hole.Addr().String()})
	const n = 100000
	start := time.Now()
	for i := range n {
		a.tr.Send([]*raftpb.Message{app(1, 2, uint64(i), 0), app(1, 3, uint64(i), 0), app(1, 9, uint64(i), 0)})
	}
	took := time.Since(start)
	t.Logf("%d Send calls with unreachable peers: %v", n, took)
	if took > 3*time.Second {
		t.Fatalf("Send took %v for %d calls", took, n)
	}
	eventually(t, 5*time.Second, "unreachable reported", func() bool { return a.unreachable(2) > 0 && a.unreachable(3) > 0 })
	if u := a.unreachable(2); u > 50 {
		t.Fatalf("Unreachable reported %d times: flooding", u)
	}
	if a.logs.FilterMessage("dropped messages: peer queue full").Len() > 10 {
		t.Fatal("overflow logged per message")
	}
}

func snapMsg(from, to, index uint64) *raftpb.Message {
	m := msg(raftpb.MsgSnap, from, to, 0)
	m.Snapshot = &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(1)}}
	return m
}

func withSnapshotData(data []byte) memberOpt {
	return func(_ *member, c *Config) {
		c.OpenSnapshot = func(m *raftpb.Message) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		}
	}
}

func withReceive(fail bool) memberOpt {
	return func(m *member, c *Config) {
		c.ReceiveSnapshot = func(msg *raftpb.Message, data io.Reader) error {
			b, err := io.ReadAll(io.LimitReader(data, 1<<20))
			if fail {
				return errors.New("disk full")
			}
			if err == nil {
				var rest []byte
				rest, err = io.ReadAll(data)
				b = append(b, rest...)
			}
			if err != nil {
				return err
			}
			m.mu.Lock()
			m.snapData = append(m.snapData, b)
			m.events = append(m.events, "recv-snap")
			m.mu.Unlock()
			return nil
		}
	}
}

func TestSnapshot(t *testing.T) {
	data := make([]byte, 5<<20+123)
	rand.Read(data)
	a := newMember(t, 1, 7, withSnapshotData(data))
	b := newMember(t, 2, 7, withReceive(false))
	a.tr.AddPeer(2, []string{b.url})
	a.tr.Send([]*raftpb.Message{app(1, 2, 1, 0), snapMsg(1, 2, 42), app(1, 2, 2, 0)})
	eventually(t, 10*time.Second, "snapshot status", func() bool { return len(a.snapStatuses()) == 1 })
	if a.snapStatuses()[0] {
		t.Fatal("snapshot reported failed")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.snapData) != 1 || !bytes.Equal(b.snapData[0], data) {
		t.Fatalf("received %d snapshots, data equal: %v", len(b.snapData), len(b.snapData) == 1 && bytes.Equal(b.snapData[0], data))
	}
	if fmt.Sprint(b.events) != "[recv-snap deliver-snap]" {
		t.Fatalf("events %v", b.events)
	}
	var snap *raftpb.Message
	for _, m := range b.delivered {
		if m.GetType() == raftpb.MsgSnap {
			snap = m
		}
	}
	if snap == nil || snap.GetSnapshot().GetMetadata().GetIndex() != 42 || snap.GetFrom() != 1 {
		t.Fatalf("delivered snapshot %v", snap)
	}
}

func TestSnapshotBusy(t *testing.T) {
	release := make(chan struct{})
	a := newMember(t, 1, 7, func(_ *member, c *Config) {
		c.OpenSnapshot = func(m *raftpb.Message) (io.ReadCloser, error) {
			<-release
			return io.NopCloser(strings.NewReader("data")), nil
		}
	})
	b := newMember(t, 2, 7, withReceive(false))
	a.tr.AddPeer(2, []string{b.url})
	// The snapshot goroutine may not be waiting yet right after AddPeer.
	eventually(t, 5*time.Second, "connected", func() bool { return !a.tr.ActiveSince(2).IsZero() })
	a.tr.Send([]*raftpb.Message{snapMsg(1, 2, 1)})
	a.tr.Send([]*raftpb.Message{snapMsg(1, 2, 2)}) // refused: one in flight
	eventually(t, 5*time.Second, "second refused", func() bool { return len(a.snapStatuses()) == 1 })
	if !a.snapStatuses()[0] {
		t.Fatal("second snapshot not reported failed")
	}
	close(release)
	eventually(t, 5*time.Second, "first done", func() bool { return len(a.snapStatuses()) == 2 })
	if a.snapStatuses()[1] {
		t.Fatal("first snapshot failed")
	}
}

func TestSnapshotFailure(t *testing.T) {
	data := make([]byte, 3<<20)
	a := newMember(t, 1, 7, withSnapshotData(data))
	b := newMember(t, 2, 7, withReceive(true))
	a.tr.AddPeer(2, []string{b.url})
	a.tr.Send([]*raftpb.Message{snapMsg(1, 2, 42)})
	eventually(t, 10*time.Second, "snapshot status", func() bool { return len(a.snapStatuses()) == 1 })
	if !a.snapStatuses()[0] {
		t.Fatal("failed snapshot reported as success")
	}
	// The stream is unaffected; nothing of the snapshot was delivered.
	a.tr.Send([]*raftpb.Message{app(1, 2, 1, 0)})
	eventually(t, 5*time.Second, "stream delivery", func() bool { return len(b.deliveredCopy()) == 1 })
	if got := b.deliveredCopy()[0]; got.GetType() != raftpb.MsgApp {
		t.Fatalf("delivered %v", got.GetType())
	}

	// A receiver without ReceiveSnapshot refuses data.
	c := newMember(t, 3, 7)
	a.tr.AddPeer(3, []string{c.url})
	a.tr.Send([]*raftpb.Message{snapMsg(1, 3, 43)})
	eventually(t, 10*time.Second, "snapshot status", func() bool { return len(a.snapStatuses()) == 2 })
	if !a.snapStatuses()[1] || len(c.deliveredCopy()) != 0 {
		t.Fatal("snapshot data accepted by a member without ReceiveSnapshot")
	}
}

// Without OpenSnapshot, a MsgSnap (data inline) is a plain stream message.
func TestSnapshotPlain(t *testing.T) {
	a, b := newMember(t, 1, 7), newMember(t, 2, 7)
	a.tr.AddPeer(2, []string{b.url})
	m := snapMsg(1, 2, 9)
	m.Snapshot.Data = bytes.Repeat([]byte("x"), 2<<20)
	a.tr.Send([]*raftpb.Message{app(1, 2, 1, 0), m})
	eventually(t, 5*time.Second, "status", func() bool { return len(a.snapStatuses()) == 1 })
	if a.snapStatuses()[0] {
		t.Fatal("plain snapshot reported failed")
	}
	eventually(t, 5*time.Second, "delivered", func() bool { return len(b.deliveredCopy()) == 2 })
	if got := b.deliveredCopy()[1]; got.GetType() != raftpb.MsgSnap || len(got.GetSnapshot().GetData()) != 2<<20 {
		t.Fatalf("delivered %v", got.GetType())
	}
}

func TestUpdateAndRemovePeer(t *testing.T) {
	a, b := newMember(t, 1, 7), newMember(t, 2, 7)
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + dead.Addr().String()
	dead.Close()
	a.tr.AddPeer(2, []string{deadURL})
	a.tr.Send([]*raftpb.Message{app(1, 2, 1, 0)})
	eventually(t, 5*time.Second, "unreachable", func() bool { return a.unreachable(2) > 0 })
	a.tr.UpdatePeer(2, []string{b.url + "/"})
	eventually(t, 5*time.Second, "delivered after update", func() bool { return len(b.deliveredCopy()) == 1 })

	a.tr.RemovePeer(2)
	if !a.tr.ActiveSince(2).IsZero() {
		t.Fatal("ActiveSince after RemovePeer")
	}
	a.tr.Send([]*raftpb.Message{app(1, 2, 2, 0)}) // dropped: unknown peer
	a.tr.RemovePeer(2)                            // no-op
	a.tr.AddPeer(2, []string{b.url})
	a.tr.Send([]*raftpb.Message{app(1, 2, 3, 0)})
	eventually(t, 5*time.Second, "delivered after re-add", func() bool { return len(b.deliveredCopy()) == 2 })
	if got := fromIndexes(b.deliveredCopy(), 1); fmt.Sprint(got) != "[1 3]" {
		t.Fatalf("delivered %v", got)
	}
}

func TestHTTPSWithoutTLS(t *testing.T) {
	a := newMember(t, 1, 7)
	a.tr.AddPeer(2, []string{"https://127.0.0.1:1"})
	eventually(t, 5*time.Second, "unreachable", func() bool { return a.unreachable(2) > 0 })
	if a.logs.FilterMessage("failed to connect stream to peer").FilterField(zap.String("remote-peer-url", "https://127.0.0.1:1")).Len() == 0 {
		t.Fatal("no log for the https URL")
	}
	e := a.logs.FilterMessage("failed to connect stream to peer").All()[0].ContextMap()
	if !strings.Contains(fmt.Sprint(e["error"]), "no peer client TLS") {
		t.Fatalf("error %v", e["error"])
	}
}

func TestStopNoLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		var ms []*member
		for id := uint64(1); id <= 3; id++ {
			ms = append(ms, buildMember(id, 7, withSnapshotData([]byte("snapshot")), withReceive(false)))
		}
		for _, a := range ms {
			for _, b := range ms {
				a.tr.AddPeer(b.id, []string{b.url})
			}
		}
		for _, a := range ms {
			for _, b := range ms {
				if a != b {
					a.tr.Send([]*raftpb.Message{app(a.id, b.id, 1, 10), snapMsg(a.id, b.id, 5)})
				}
			}
		}
		for _, b := range ms {
			eventually(t, 5*time.Second, "delivered", func() bool { return len(b.deliveredCopy()) == 4 })
		}
		// Stop with the streams live; the servers stay up a moment, as a
		// node stops its transport before its listener.
		for _, m := range ms {
			m.tr.Stop()
			m.tr.Stop() // idempotent
			m.tr.Send([]*raftpb.Message{app(m.id, 1, 1, 0)})
			m.tr.AddPeer(9, []string{"http://127.0.0.1:1"}) // ignored after Stop
		}
		for _, m := range ms {
			m.srv.Close()
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d, before: %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTLS(t *testing.T) {
	b := newMember(t, 2, 7)
	b.srv.Close()
	b.srv = httptest.NewUnstartedServer(b.tr.Handler())
	b.srv.StartTLS() // HTTP/1.1 only, test certificate
	clientTLS := b.srv.Client().Transport.(*http.Transport).TLSClientConfig
	a := newMember(t, 1, 7, func(_ *member, c *Config) { c.TLS = clientTLS })
	a.tr.AddPeer(2, []string{b.srv.URL})
	if !strings.HasPrefix(b.srv.URL, "https://") {
		t.Fatalf("url %s", b.srv.URL)
	}
	a.tr.Send([]*raftpb.Message{app(1, 2, 1, 0), app(1, 2, 2, 0)})
	eventually(t, 5*time.Second, "delivered over TLS", func() bool { return len(b.deliveredCopy()) == 2 })
	checkInOrder(t, fromIndexes(b.deliveredCopy(), 1), 2)
}

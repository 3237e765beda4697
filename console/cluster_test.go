package console_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Leases are listed with their remaining TTL and attached keys, and
// revoking one deletes its keys.
func TestLeases(t *testing.T) {
	m := startMember(t)
	cli := m.client(t, "", "")
	ctx := context.Background()
	lease, err := cli.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"l/a", "l/b"} {
		if _, err := cli.Put(ctx, k, "v", clientv3.WithLease(lease.ID)); err != nil {
			t.Fatal(err)
		}
	}
	b := m.browser(t)
	var l struct {
		Total  int
		Leases []struct {
			ID         string
			TTL        int64
			GrantedTTL int64
			Keys       [][]byte
			KeyCount   int
		}
	}
	if code := b.get("leases", nil, &l); code != http.StatusOK || l.Total != 1 || len(l.Leases) != 1 {
		t.Fatalf("leases: %d %+v", code, l)
	}
	got := l.Leases[0]
	if got.ID != strconv.FormatInt(int64(lease.ID), 16) || got.GrantedTTL != 600 || got.TTL <= 0 || got.TTL > 600 ||
		got.KeyCount != 2 || string(got.Keys[0]) != "l/a" || string(got.Keys[1]) != "l/b" {
		t.Fatalf("lease %+v", got)
	}
	if code := b.post("lease/revoke", map[string]string{"id": got.ID}, nil); code != http.StatusOK {
		t.Fatalf("revoke: %d", code)
	}
	if r, err := cli.Get(ctx, "l/", clientv3.WithPrefix()); err != nil || len(r.Kvs) != 0 {
		t.Fatalf("keys of a revoked lease: %v %v", r.Kvs, err)
	}
	if len(logged(m.logs, "console action", "action", "lease-revoke")) != 1 {
		t.Fatal("revoke not logged")
	}
}

// The members page: this member's own Status, the leader, the alarms;
// disarming an alarm through the console; actions that need the root
// role refused to another user, as etcd refuses them.
func TestMembersAlarmsAndAdmin(t *testing.T) {
	m := startMember(t)
	cli := m.client(t, "", "")
	ctx := context.Background()
	st, err := cli.Get(ctx, "any")
	if err != nil {
		t.Fatal(err)
	}
	self := strconv.FormatUint(st.Header.MemberId, 16)
	if _, err := cli.AlarmList(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pb.NewMaintenanceClient(cli.ActiveConnection()).Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE,
		MemberID: st.Header.MemberId, Alarm: pb.AlarmType_NOSPACE}); err != nil {
		t.Fatal(err)
	}
	m.enableAuth(t)

	root := m.browser(t)
	if code := root.login("root", "root"); code != http.StatusOK {
		t.Fatalf("login: %d", code)
	}
	var c struct {
		Leader  string
		Members []struct {
			ID     string
			Name   string
			Self   bool
			Status *struct {
				Leader   string
				RaftTerm uint64
				DBSize   int64
				Version  string
				Errors   []string
			}
		}
		Alarms []struct{ Member, Alarm string }
	}
	if code := root.get("members", nil, &c); code != http.StatusOK {
		t.Fatalf("members: %d", code)
	}
	if len(c.Members) != 1 || !c.Members[0].Self || c.Members[0].ID != self || c.Leader != self {
		t.Fatalf("members %+v leader %s, want this member (%s) leading", c.Members, c.Leader, self)
	}
	if s := c.Members[0].Status; s == nil || s.RaftTerm == 0 || s.DBSize == 0 || s.Version != "3.7.3" || len(s.Errors) != 1 {
		t.Fatalf("status %+v, want etcd's with the NOSPACE alarm as its error", s)
	}
	if len(c.Alarms) != 1 || c.Alarms[0].Member != self || c.Alarms[0].Alarm != "NOSPACE" {
		t.Fatalf("alarms %+v", c.Alarms)
	}

	alice := m.browser(t)
	alice.login("alice", "alice")
	var e apiErr
	for _, tc := range []struct {
		path string
		body any
	}{
		{"alarms/disarm", map[string]string{"member": self, "alarm": "NOSPACE"}},
		{"members/move-leader", map[string]string{"id": self}},
		{"defrag", map[string]string{"id": self}},
		{"compact", map[string]any{"revision": 1}},
		{"auth/user-add", map[string]string{"name": "mallory", "password": "x"}},
	} {
		if code := alice.post(tc.path, tc.body, &e); code != http.StatusForbidden || e.Error != "etcdserver: permission denied" {
			t.Errorf("alice %s: %d %+v, want 403 permission denied", tc.path, code, e)
		}
	}

	if code := root.post("alarms/disarm", map[string]string{"member": self, "alarm": "NOSPACE"}, &e); code != http.StatusOK {
		t.Fatalf("root disarms: %d %+v", code, e)
	}
	if root.get("members", nil, &c); len(c.Alarms) != 0 {
		t.Fatalf("alarms after disarm: %+v", c.Alarms)
	}
	for _, tc := range []struct {
		path string
		body any
	}{
		{"members/move-leader", map[string]string{"id": self}}, // to itself: a no-op, as etcd
		{"defrag", map[string]string{"id": self}},
	} {
		if code := root.post(tc.path, tc.body, &e); code != http.StatusOK {
			t.Errorf("root %s: %d %+v", tc.path, code, e)
		}
	}
	if code := root.post("members/move-leader", map[string]string{"id": "abc"}, &e); code != http.StatusConflict || !strings.Contains(e.Error, "transferee") {
		t.Errorf("move-leader to an unknown member: %d %+v, want etcd's bad leader transferee", code, e)
	}
	if len(logged(m.logs, "console action", "action", "disarm-alarm")) != 2 {
		t.Errorf("disarm attempts not logged: %v", m.logs.FilterMessage("console action").All())
	}
}

// Root sees every user and role and changes them; another user sees their
// own user and roles only.
func TestAuthView(t *testing.T) {
	m := startMember(t)
	m.enableAuth(t)
	type view struct {
		Enabled bool
		Partial bool
		Users   []struct {
			Name  string
			Roles []string
		}
		Roles []struct {
			Name  string
			Perms []struct {
				Type     string
				Key      []byte
				RangeEnd []byte
			}
		}
	}
	names := func(v view) string {
		var out []string
		for _, u := range v.Users {
			out = append(out, u.Name+":"+strings.Join(u.Roles, "+"))
		}
		for _, r := range v.Roles {
			for _, p := range r.Perms {
				out = append(out, r.Name+"="+p.Type+" "+string(p.Key)+".."+string(p.RangeEnd))
			}
		}
		return strings.Join(out, " ")
	}
	alice := m.browser(t)
	alice.login("alice", "alice")
	var v view
	if code := alice.get("auth", nil, &v); code != http.StatusOK || !v.Enabled || !v.Partial || names(v) != "alice:app app=READWRITE app/..app0" {
		t.Fatalf("alice's view: %d %+v (%s)", code, v, names(v))
	}
	root := m.browser(t)
	root.login("root", "root")
	for _, a := range []struct {
		action string
		body   map[string]any
	}{
		{"user-add", map[string]any{"name": "bob", "password": "bob"}},
		{"role-add", map[string]any{"role": "ops"}},
		{"grant-permission", map[string]any{"role": "ops", "type": "READ", "key": []byte("ops/"), "rangeEnd": []byte("ops0")}},
		{"grant-role", map[string]any{"name": "bob", "role": "ops"}},
	} {
		if code := root.post("auth/"+a.action, a.body, nil); code != http.StatusOK {
			t.Fatalf("%s: %d", a.action, code)
		}
	}
	v = view{}
	if code := root.get("auth", nil, &v); code != http.StatusOK || v.Partial ||
		names(v) != "alice:app bob:ops root:root app=READWRITE app/..app0 ops=READ ops/..ops0" {
		t.Fatalf("root's view: %d %s", code, names(v))
	}
	if code := root.post("auth/no-such-action", map[string]any{}, nil); code != http.StatusNotFound {
		t.Fatalf("an unknown action: %d", code)
	}
	// The audit log has the console's auth changes as the member's own.
	if len(logged(m.audit, "audit", "method", "/etcdserverpb.Auth/UserAdd")) < 3 {
		t.Fatalf("user-add not audited: %v", m.audit.All())
	}
	for _, e := range m.logs.FilterMessage("console action").All() {
		if strings.Contains(toString(e.ContextMap()), `"bob"`) && strings.Contains(toString(e.ContextMap()), "password") {
			t.Fatalf("a password in the log: %v", e.ContextMap())
		}
	}
}

// Compaction through the console: older versions are gone from the
// key's history, which says so.
func TestCompactFromConsole(t *testing.T) {
	m := startMember(t)
	cli := m.client(t, "", "")
	m.put(t, cli, "c", "1")
	second := m.put(t, cli, "c", "2")
	m.put(t, cli, "c", "3")
	b := m.browser(t)
	if code := b.post("compact", map[string]any{"revision": second, "physical": true}, nil); code != http.StatusOK {
		t.Fatalf("compact: %d", code)
	}
	var h struct {
		Versions  []kv
		Compacted int64
	}
	if code := b.get("history", url.Values{"key": {b64("c")}}, &h); code != http.StatusOK || len(h.Versions) != 2 || h.Compacted == 0 {
		t.Fatalf("history after compaction: %d %+v", code, h)
	}
	// The performance page's gauges see it.
	var p struct{ Now map[string]float64 }
	if code := b.get("metrics", nil, &p); code != http.StatusOK || p.Now["etcd_debugging_mvcc_compact_revision"] != float64(second) {
		t.Fatalf("metrics: %d %+v", code, p.Now)
	}
}

// Console actions are counted by action and result.
func TestRequestsMetric(t *testing.T) {
	m := startMember(t)
	b := m.browser(t)
	b.post("put", map[string]any{"key": b64("m"), "value": b64("1"), "modRevision": 0}, nil)
	b.postWith("put", map[string]any{"key": b64("m"), "value": b64("1"), "modRevision": 0}, nil, func(r *http.Request) { r.Header.Del("X-Console-CSRF") })
	resp, err := http.Get(m.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`metastore_console_requests_total{action="put",result="ok"}`, `metastore_console_requests_total{action="put",result="refused"}`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

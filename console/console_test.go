package console_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/metastore/metastore/console"
	"github.com/metastore/metastore/node"
	"github.com/metastore/metastore/testkit"
)

// The UI is served with a Content-Security-Policy that allows no inline
// script or style and no eval, and is framed by no one.
func TestUIServedWithCSP(t *testing.T) {
	m := startMember(t)
	for _, path := range []string{"/ui/", "/ui/js/app.js", "/ui/api/session"} {
		resp, err := http.Get(m.url + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-") {
			t.Errorf("%s: CSP %q allows unsafe-*", path, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", path)
		}
		if path == "/ui/" && !strings.Contains(string(body), `src="js/app.js"`) {
			t.Errorf("/ui/ is not the console page: %s", body)
		}
	}
}

// --enable-console=false: nothing under /ui/.
func TestConsoleOff(t *testing.T) {
	m := startMember(t, func(c *node.Config) { c.EnableConsole = false })
	resp, err := http.Get(m.url + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/ui/ with the console off: %d, want 404", resp.StatusCode)
	}
}

// With auth off no login is needed: create, read, edit with CAS, read the
// history newest first, delete.
func TestAuthOffKeyLifecycle(t *testing.T) {
	m := startMember(t)
	b := m.browser(t)
	var s struct{ AuthEnabled bool }
	if b.get("session", nil, &s); s.AuthEnabled {
		t.Fatal("auth reported on")
	}
	var w struct {
		Revision int64
		Conflict bool
	}
	if code := b.post("put", map[string]any{"key": b64("cfg/a"), "value": b64("v1"), "modRevision": 0}, &w); code != http.StatusOK {
		t.Fatalf("create: %d", code)
	}
	mod := w.Revision
	for _, v := range []string{"v2", "v3"} {
		if code := b.post("put", map[string]any{"key": b64("cfg/a"), "value": b64(v), "modRevision": mod}, &w); code != http.StatusOK {
			t.Fatalf("edit to %s: %d", v, code)
		}
		mod = w.Revision
	}
	var k struct{ KV *kv }
	if code := b.get("key", url.Values{"key": {b64("cfg/a")}}, &k); code != http.StatusOK || string(k.KV.Value) != "v3" || k.KV.Version != 3 {
		t.Fatalf("read: %d %+v", code, k.KV)
	}
	var h struct {
		Versions []kv
		Next     int64
	}
	if code := b.get("history", url.Values{"key": {b64("cfg/a")}}, &h); code != http.StatusOK {
		t.Fatalf("history: %d", code)
	}
	var got []string
	for _, v := range h.Versions {
		got = append(got, fmt.Sprintf("%s@v%d", v.Value, v.Version))
	}
	if strings.Join(got, " ") != "v3@v3 v2@v2 v1@v1" || h.Next != 0 {
		t.Fatalf("history %v next %d, want v3 v2 v1 and no more", got, h.Next)
	}
	// A page at a time: one version, then the rest from where it stopped.
	if b.get("history", url.Values{"key": {b64("cfg/a")}, "limit": {"1"}}, &h); len(h.Versions) != 1 || h.Next != mod {
		t.Fatalf("first page %+v", h)
	}
	if b.get("history", url.Values{"key": {b64("cfg/a")}, "before": {fmt.Sprint(h.Next)}}, &h); len(h.Versions) != 2 || string(h.Versions[0].Value) != "v2" {
		t.Fatalf("second page %+v", h)
	}
	if code := b.post("delete", map[string]any{"key": b64("cfg/a"), "modRevision": mod}, &w); code != http.StatusOK {
		t.Fatalf("delete: %d", code)
	}
	if b.get("key", url.Values{"key": {b64("cfg/a")}}, &k); k.KV != nil {
		t.Fatalf("deleted key still read: %+v", k.KV)
	}
	if len(logged(m.logs, "console action", "action", "delete")) != 1 {
		t.Fatalf("no log line for the delete: %v", m.logs.FilterMessage("console action").All())
	}
}

// An edit made against a version someone else has replaced is refused
// with the version that is there now, and writes nothing.
func TestEditConflict(t *testing.T) {
	m := startMember(t)
	b := m.browser(t)
	cli := m.client(t, "", "")
	shown := m.put(t, cli, "k", "mine-was-based-on-this")
	theirs := m.put(t, cli, "k", "theirs")

	var w struct {
		Conflict bool
		Current  *kv
	}
	code := b.post("put", map[string]any{"key": b64("k"), "value": b64("mine"), "modRevision": shown}, &w)
	if code != http.StatusConflict || !w.Conflict || w.Current == nil || w.Current.ModRevision != theirs || string(w.Current.Value) != "theirs" {
		t.Fatalf("stale edit: %d %+v %+v, want 409 with their version (mod %d)", code, w, w.Current, theirs)
	}
	got, err := cli.Get(context.Background(), "k")
	if err != nil || string(got.Kvs[0].Value) != "theirs" {
		t.Fatalf("after a refused edit the key holds %q (%v)", got.Kvs[0].Value, err)
	}
	// Creating a key that exists is a conflict too; so is deleting a stale version.
	if code := b.post("put", map[string]any{"key": b64("k"), "value": b64("x"), "modRevision": 0}, &w); code != http.StatusConflict {
		t.Fatalf("create over an existing key: %d", code)
	}
	if code := b.post("delete", map[string]any{"key": b64("k"), "modRevision": shown}, &w); code != http.StatusConflict {
		t.Fatalf("stale delete: %d", code)
	}
	// Saving over their version is an explicit choice: it names it.
	if code := b.post("put", map[string]any{"key": b64("k"), "value": b64("mine"), "modRevision": theirs}, &w); code != http.StatusOK {
		t.Fatalf("edit of the current version: %d", code)
	}
	if len(logged(m.logs, "console action", "result", "conflict")) != 3 {
		t.Fatalf("conflicts not logged: %v", m.logs.FilterMessage("console action").All())
	}
}

// A mutating request without the session's CSRF token, from another
// origin, from a cross-site fetch, as a form post, or without a session
// at all is refused before it reaches the member.
func TestCSRF(t *testing.T) {
	m := startMember(t)
	b := m.browser(t)
	body := map[string]any{"key": b64("csrf"), "value": b64("x"), "modRevision": 0}
	for _, tc := range []struct {
		name string
		edit func(*http.Request)
	}{
		{"no token", func(r *http.Request) { r.Header.Del("X-Console-CSRF") }},
		{"wrong token", func(r *http.Request) { r.Header.Set("X-Console-CSRF", "forged") }},
		{"other origin", func(r *http.Request) { r.Header.Set("Origin", "http://evil.example") }},
		{"cross-site fetch", func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") }},
		{"form post", func(r *http.Request) { r.Header.Set("Content-Type", "application/x-www-form-urlencoded") }},
		{"no session", func(r *http.Request) { r.Header.Del("Cookie") }},
	} {
		var e apiErr
		var code int
		if tc.name == "no session" {
			// A client without the cookie jar: no session cookie at all.
			nb := &browser{t: t, base: b.base, hc: &http.Client{}, csrf: b.csrf}
			code = nb.post("put", body, &e)
		} else {
			code = b.postWith("put", body, &e, tc.edit)
		}
		if code != http.StatusForbidden {
			t.Errorf("%s: %d %+v, want 403", tc.name, code, e)
		}
	}
	got, err := m.client(t, "", "").Get(context.Background(), "csrf")
	if err != nil || len(got.Kvs) != 0 {
		t.Fatalf("a refused request wrote: %v %v", got.Kvs, err)
	}
	if code := b.post("put", body, nil); code != http.StatusOK {
		t.Fatalf("the same request with the token: %d", code)
	}
}

// The session cookie is HttpOnly, SameSite=Strict, scoped to /ui/, and
// Secure when served over TLS; the login's answer and cookie never carry
// the etcd token.
func TestSessionCookieFlags(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   []memberOpt
		secure bool
	}{{"http", nil, false}, {"https", []memberOpt{withTLS}, true}} {
		t.Run(tc.name, func(t *testing.T) {
			m := startMember(t, tc.opts...)
			m.enableAuth(t)
			b := m.browser(t)
			raw, _ := json.Marshal(map[string]string{"user": "alice", "password": "alice"})
			req, _ := http.NewRequest(http.MethodPost, m.url+"/ui/api/login", bytes.NewReader(raw))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Console-CSRF", b.csrf)
			resp, err := b.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("login: %d %s", resp.StatusCode, answer)
			}
			cookies := resp.Cookies()
			if len(cookies) != 1 {
				t.Fatalf("cookies %v", cookies)
			}
			c := cookies[0]
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/ui/" || c.Secure != tc.secure {
				t.Fatalf("cookie %s: HttpOnly %v SameSite %v Path %q Secure %v", c.Name, c.HttpOnly, c.SameSite, c.Path, c.Secure)
			}
			// The answer is the session's user and CSRF token, nothing
			// more; neither it nor the cookie is a token the member takes.
			var s struct {
				User        string
				CSRF        string
				AuthEnabled bool
			}
			dec := json.NewDecoder(bytes.NewReader(answer))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&s); err != nil || s.User != "alice" {
				t.Fatalf("login answer %s: %v", answer, err)
			}
			conn := m.grpcConn(t)
			for _, v := range []string{c.Value, s.CSRF} {
				ctx := metadata.AppendToOutgoingContext(context.Background(), "token", v)
				_, err := pb.NewKVClient(conn).Range(ctx, &pb.RangeRequest{Key: []byte("app/x")})
				if err == nil || !strings.Contains(err.Error(), "invalid auth token") {
					t.Fatalf("a value the browser holds works as an etcd token: %v", err)
				}
			}
		})
	}
}

// With auth on nothing is shown without login; a user sees what etcd
// lets them see: a prefix outside their permissions is etcd's
// "permission denied", audited exactly as the same gRPC request is.
func TestAuthOnPermissions(t *testing.T) {
	m := startMember(t)
	m.enableAuth(t)
	b := m.browser(t)
	var s struct {
		AuthEnabled bool
		User        string
	}
	if b.get("session", nil, &s); !s.AuthEnabled || s.User != "" {
		t.Fatalf("session before login: %+v", s)
	}
	var e apiErr
	if code := b.get("keys", url.Values{"prefix": {b64("app/")}}, &e); code != http.StatusUnauthorized || !e.Login {
		t.Fatalf("keys before login: %d %+v, want 401 asking for a login", code, e)
	}
	if code := b.login("alice", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("login with a wrong password: %d", code)
	}
	if code := b.login("alice", "alice"); code != http.StatusOK {
		t.Fatalf("login: %d", code)
	}
	if code := b.post("put", map[string]any{"key": b64("app/x"), "value": b64("1"), "modRevision": 0}, nil); code != http.StatusOK {
		t.Fatalf("alice writes app/x: %d", code)
	}
	var l struct{ Total int64 }
	if code := b.get("keys", url.Values{"prefix": {b64("app/")}}, &l); code != http.StatusOK || l.Total != 1 {
		t.Fatalf("alice lists app/: %d %+v", code, l)
	}

	// Through the console, then the same request over gRPC as alice.
	m.audit.TakeAll()
	if code := b.get("keys", url.Values{"prefix": {b64("secret/")}}, &e); code != http.StatusForbidden || e.Error != "etcdserver: permission denied" {
		t.Fatalf("alice lists secret/: %d %+v, want 403 permission denied", code, e)
	}
	viaConsole := m.audit.TakeAll()
	_, err := m.client(t, "alice", "alice").Get(context.Background(), "secret/", clientv3.WithRange(clientv3.GetPrefixRangeEnd("secret/")), clientv3.WithCountOnly())
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("gRPC: %v", err)
	}
	viaGRPC := m.audit.TakeAll()
	var authenticate int
	for _, r := range viaGRPC {
		if r.ContextMap()["method"] == "/etcdserverpb.Auth/Authenticate" {
			authenticate++
		}
	}
	if len(viaConsole) != 1 || len(viaGRPC)-authenticate != 1 {
		t.Fatalf("audit records: console %v, gRPC %v", viaConsole, viaGRPC)
	}
	cf, gf := viaConsole[0].ContextMap(), viaGRPC[len(viaGRPC)-1].ContextMap()
	for _, f := range []string{"method", "user", "key", "range-end", "result"} {
		if toString(cf[f]) != toString(gf[f]) {
			t.Errorf("audit %s: console %q, gRPC %q", f, cf[f], gf[f])
		}
	}
	if host, _, _ := net.SplitHostPort(toString(gf["remote"])); toString(cf["remote"]) != host {
		t.Errorf("audit remote: console %q, gRPC %q: want the browser's address", cf["remote"], gf["remote"])
	}

	// The watch feed is checked the same way.
	resp, err := b.hc.Get(m.url + "/ui/api/watch?prefix=" + url.QueryEscape(b64("secret/")))
	if err != nil {
		t.Fatal(err)
	}
	decodeBody(t, resp, &e)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(e.Error, "permission denied") {
		t.Fatalf("alice watches secret/: %d %+v", resp.StatusCode, e)
	}

	if code := b.post("logout", map[string]any{}, &s); code != http.StatusOK {
		t.Fatalf("logout: %d", code)
	}
	if code := b.get("keys", url.Values{"prefix": {b64("app/")}}, &e); code != http.StatusUnauthorized {
		t.Fatalf("keys after logout: %d", code)
	}
	if len(logged(m.logs, "console login", "user", "alice")) != 1 || len(logged(m.logs, "console logout", "user", "alice")) != 1 {
		t.Fatalf("login/logout not logged")
	}
}

// The tree under a prefix, a page at a time: keys right under it and one
// entry per directory with its key count, in key order, every page read
// at the first one's revision.
func TestKeysTreePaging(t *testing.T) {
	m := startMember(t)
	cli := m.client(t, "", "")
	ctx := context.Background()
	var want []string
	var ops []clientv3.Op
	flush := func() {
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
		ops = nil
	}
	add := func(k string) {
		ops = append(ops, clientv3.OpPut(k, "v"))
		if len(ops) == 100 {
			flush()
		}
	}
	for i := range 150 {
		k := fmt.Sprintf("t/k%03d", i)
		add(k)
		want = append(want, k)
		if i%50 == 0 {
			// A directory between the keys, big enough to span pages.
			dir := fmt.Sprintf("t/k%03d-dir/", i)
			for j := range 120 {
				add(fmt.Sprintf("%s%03d", dir, j))
			}
			want = append(want, dir+" 120")
		}
	}
	add("u/outside")
	flush()

	b := m.browser(t)
	var got []string
	var rev int64
	from := ""
	for page := 0; ; page++ {
		var l struct {
			Revision int64
			Total    int64
			Entries  []struct {
				Key   []byte
				Dir   bool
				Count int64
			}
			Next []byte
		}
		q := url.Values{"prefix": {b64("t/")}, "limit": {"40"}, "from": {from}, "rev": {fmt.Sprint(rev)}}
		if code := b.get("keys", q, &l); code != http.StatusOK {
			t.Fatalf("page %d: %d", page, code)
		}
		if page == 0 {
			rev = l.Revision
			if l.Total != 150+3*120 {
				t.Fatalf("total %d", l.Total)
			}
			m.put(t, cli, "t/k149z-late", "written after the first page")
		}
		for _, e := range l.Entries {
			if e.Dir {
				got = append(got, fmt.Sprintf("%s %d", e.Key, e.Count))
			} else {
				got = append(got, string(e.Key))
			}
		}
		if l.Next == nil {
			break
		}
		from = b64(string(l.Next))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("listing:\n got %v\nwant %v", got, want)
	}
}

// The watch feed relays a put made by another client as an SSE event
// whose id is its revision.
func TestWatchFeed(t *testing.T) {
	m := startMember(t)
	b := m.browser(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.url+"/ui/api/watch?prefix="+url.QueryEscape(b64("w/")), nil)
	resp, err := b.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("watch: %d %s", resp.StatusCode, ct)
	}
	lines := bufio.NewReader(resp.Body)
	next := func() string {
		l, err := lines.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSuffix(l, "\n")
	}
	if l := next(); l != "event: created" {
		t.Fatalf("first line %q", l)
	}
	next()
	next()
	rev := m.put(t, m.client(t, "", ""), "w/x", "hello")
	m.put(t, m.client(t, "", ""), "other", "not watched")
	if l := next(); l != fmt.Sprintf("id: %d", rev) {
		t.Fatalf("event id line %q, want revision %d", l, rev)
	}
	l := next()
	if !strings.HasPrefix(l, "data: ") || !strings.Contains(l, `"type":"PUT"`) || !strings.Contains(l, b64("w/x")) || !strings.Contains(l, b64("hello")) {
		t.Fatalf("event %q", l)
	}
}

// grpcConn is a plain gRPC connection to the member (no clientv3
// retries or token refresh).
func (m *member) grpcConn(t *testing.T) *grpc.ClientConn {
	t.Helper()
	creds := insecure.NewCredentials()
	if strings.HasPrefix(m.url, "https://") {
		creds = credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})
	}
	conn, err := grpc.NewClient(strings.TrimPrefix(strings.TrimPrefix(m.url, "https://"), "http://"), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// A session unused for longer than its idle time ends: the browser must
// log in again.
func TestSessionIdleExpiry(t *testing.T) {
	m := startMember(t)
	m.enableAuth(t)
	conn := m.grpcConn(t)
	clock := testkit.NewFakeClock(time.Unix(1e9, 0))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := httptest.NewServer(console.New(ctx, console.Config{Conn: conn, Clock: clock, SessionIdle: time.Minute}))
	defer srv.Close()
	b := (&member{url: srv.URL}).browser(t)
	if code := b.login("alice", "alice"); code != http.StatusOK {
		t.Fatalf("login: %d", code)
	}
	q := url.Values{"prefix": {b64("app/")}}
	clock.Advance(50 * time.Second)
	if code := b.get("keys", q, nil); code != http.StatusOK {
		t.Fatalf("keys within the idle time: %d", code)
	}
	clock.Advance(50 * time.Second) // 100 s after login, 50 s after last use
	if code := b.get("keys", q, nil); code != http.StatusOK {
		t.Fatalf("keys within the idle time of the last use: %d", code)
	}
	clock.Advance(61 * time.Second)
	var e apiErr
	if code := b.get("keys", q, &e); code != http.StatusUnauthorized || !e.Login {
		t.Fatalf("keys after the idle time: %d %+v, want 401 asking for a login", code, e)
	}
}

package console_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/metastore/metastore/node"
	"github.com/metastore/metastore/node/nodetest"
)

// member is a one-member cluster in this process with the console on,
// its server log and audit log captured.
type member struct {
	n     *node.Node
	url   string // client URL: gRPC and HTTP
	logs  *observer.ObservedLogs
	audit *observer.ObservedLogs
}

type memberOpt func(*node.Config)

// withTLS serves the client URL over https with a self-signed (auto TLS)
// certificate.
func withTLS(c *node.Config) {
	u := []string{"https://127.0.0.1:0"}
	c.ListenClientURLs, c.AdvertiseClientURLs = u, u
	c.ClientTLS.AutoTLS = true
}

func startMember(t *testing.T, opts ...memberOpt) *member {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	acore, audit := observer.New(zap.InfoLevel)
	cfg := nodetest.Lone("console", t.TempDir())
	cfg.EnableGRPCGateway, cfg.EnableConsole = true, true
	cfg.Logger, cfg.Audit = zap.New(core), zap.New(acore)
	for _, o := range opts {
		o(&cfg)
	}
	n := nodetest.Start(t, cfg)
	scheme := "http://"
	if cfg.ClientTLS.AutoTLS {
		scheme = "https://"
	}
	return &member{n: n, url: scheme + n.ClientAddrs()[0], logs: logs, audit: audit}
}

// client is a gRPC client of the member (as user, if given).
func (m *member) client(t *testing.T, user, password string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.url}, DialTimeout: 5 * time.Second,
		Username: user, Password: password, Logger: zap.NewNop(),
		TLS: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// enableAuth makes root (password "root") and alice (password "alice",
// read-write on app/ only), and turns auth on.
func (m *member) enableAuth(t *testing.T) {
	t.Helper()
	cli := m.client(t, "", "")
	ctx := context.Background()
	steps := []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", "root"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.UserAdd(ctx, "alice", "alice"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "app"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "app", "app/", clientv3.GetPrefixRangeEnd("app/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserGrantRole(ctx, "alice", "app"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
}

// browser is an HTTP client of the console with a cookie jar, which
// sends the session's CSRF token and a same-origin Origin as the UI does.
type browser struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
}

func (m *member) browser(t *testing.T) *browser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &browser{t: t, base: m.url, hc: &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}
	var s struct{ CSRF string }
	if code := b.get("session", nil, &s); code != http.StatusOK {
		t.Fatalf("session: %d", code)
	}
	b.csrf = s.CSRF
	return b
}

// get calls a read endpoint, decoding the answer into out; it returns
// the status.
func (b *browser) get(path string, q url.Values, out any) int {
	b.t.Helper()
	u := b.base + "/ui/api/" + path
	if q != nil {
		u += "?" + q.Encode()
	}
	resp, err := b.hc.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	return decodeBody(b.t, resp, out)
}

// post calls a mutating endpoint as the UI does.
func (b *browser) post(path string, body, out any) int {
	b.t.Helper()
	return b.postWith(path, body, out, func(r *http.Request) {})
}

// postWith posts after edit changed the request (headers a forger would
// or would not be able to send).
func (b *browser) postWith(path string, body, out any, edit func(*http.Request)) int {
	b.t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, b.base+"/ui/api/"+path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Console-CSRF", b.csrf)
	req.Header.Set("Origin", b.base)
	edit(req)
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	return decodeBody(b.t, resp, out)
}

func (b *browser) login(user, password string) int {
	b.t.Helper()
	var s struct{ CSRF, User string }
	code := b.post("login", map[string]string{"user": user, "password": password}, &s)
	if code == http.StatusOK {
		b.csrf = s.CSRF
	}
	return code
}

func decodeBody(t *testing.T, resp *http.Response, out any) int {
	t.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s: %v: %s", resp.Request.URL.Path, err, raw)
		}
	}
	return resp.StatusCode
}

// b64 is a key or value as the API takes it.
func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// apiErr is an error reply's body.
type apiErr struct {
	Error string
	Code  string
	Login bool
}

// kv is a key's JSON as the API writes it.
type kv struct {
	Key            []byte
	Value          []byte
	ModRevision    int64
	CreateRevision int64
	Version        int64
	Lease          string
}

// put writes through gRPC (another operator, or a script).
func (m *member) put(t *testing.T, cli *clientv3.Client, key, value string) int64 {
	t.Helper()
	resp, err := cli.Put(context.Background(), key, value)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

// logged reports the captured log lines with message msg whose string
// field key is value.
func logged(logs *observer.ObservedLogs, msg, key, value string) []observer.LoggedEntry {
	var out []observer.LoggedEntry
	for _, e := range logs.FilterMessage(msg).All() {
		if v, ok := e.ContextMap()[key]; ok && strings.Contains(toString(v), value) {
			out = append(out, e)
		}
	}
	return out
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

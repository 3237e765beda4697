package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
)

// TestRequestStatsLogLikeEtcd: at --log-level=debug, MetaStore and etcd
// log "request stats" for each unary request alike: same message and
// level, the same fields with values of the same JSON types, the same
// request description (count, size, content: a put's value shown as its
// size) and response count; a user's password is in neither log.
func TestRequestStatsLogLikeEtcd(t *testing.T) {
	const password, value = "pa55-w0rd-from-e2e", "value-from-e2e"
	flags := WithFlags("--log-level=debug")
	servers := []*Server{StartEtcd(t, flags), StartMetaStore(t, flags)}
	methods := []string{"/etcdserverpb.KV/Put", "/etcdserverpb.KV/Range", "/etcdserverpb.KV/Txn", "/etcdserverpb.Auth/UserAdd"}
	lines := make([]map[string]map[string]any, len(servers)) // by server, by method
	for i, s := range servers {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cli := s.Client(t)
		if _, err := cli.Put(ctx, "stats/k", value); err != nil {
			t.Fatalf("%s: put: %v", s.Name, err)
		}
		if _, err := cli.Get(ctx, "stats/", clientv3.WithPrefix(), clientv3.WithLimit(5)); err != nil {
			t.Fatalf("%s: range: %v", s.Name, err)
		}
		if _, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Value("stats/k"), "=", value)).
			Then(clientv3.OpPut("stats/k", value+"2")).Else(clientv3.OpGet("stats/k")).Commit(); err != nil {
			t.Fatalf("%s: txn: %v", s.Name, err)
		}
		if _, err := cli.UserAdd(ctx, "stats-user", password); err != nil {
			t.Fatalf("%s: user add: %v", s.Name, err)
		}
		lines[i] = requestStatsLines(t, s, methods)
		if strings.Contains(s.Log(), password) {
			t.Errorf("%s logged the password", s.Name)
		}
	}

	ref, ms := lines[0], lines[1]
	for _, m := range methods {
		r, got := ref[m], ms[m]
		for _, k := range []string{"level", "request count", "request size", "response count"} {
			if fmt.Sprint(got[k]) != fmt.Sprint(r[k]) {
				t.Errorf("%s: %s: %v, etcd %v", m, k, got[k], r[k])
			}
		}
		if squeezeSpaces(got["request content"]) != squeezeSpaces(r["request content"]) {
			t.Errorf("%s: request content %q, etcd %q", m, got["request content"], r["request content"])
		}
		if strings.Contains(fmt.Sprint(got["request content"]), value) || strings.Contains(fmt.Sprint(r["request content"]), value) {
			t.Errorf("%s: a value in the request content: %q, etcd %q", m, got["request content"], r["request content"])
		}
		if want, have := fieldTypes(r), fieldTypes(got); !slices.Equal(have, want) {
			t.Errorf("%s: fields\n%v\netcd's\n%v", m, have, want)
		}
		for i, s := range servers {
			if remote := fmt.Sprint(lines[i][m]["remote"]); !strings.HasPrefix(remote, "127.0.0.1:") {
				t.Errorf("%s: %s: remote %q, want the client's address", s.Name, m, remote)
			}
		}
	}
}

// requestStatsLines waits until s has logged "request stats" for each of
// methods and returns the last line logged for each, by method.
func requestStatsLines(t *testing.T, s *Server, methods []string) map[string]map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		byMethod := map[string]map[string]any{}
		for _, l := range strings.Split(s.Log(), "\n") {
			var f map[string]any
			if !strings.HasPrefix(l, "{") || json.Unmarshal([]byte(l), &f) != nil || f["msg"] != "request stats" {
				continue
			}
			byMethod[fmt.Sprint(f["response type"])] = f
		}
		missing := slices.DeleteFunc(slices.Clone(methods), func(m string) bool { return byMethod[m] != nil })
		if len(missing) == 0 {
			return byMethod
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no request stats logged for %v", s.Name, missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fieldTypes lists a log line's fields as "name: JSON type", sorted, the
// envelope left out (time, caller and logger name differ by design).
func fieldTypes(f map[string]any) []string {
	var out []string
	for k, v := range f {
		switch k {
		case "ts", "caller", "logger":
			continue
		}
		out = append(out, fmt.Sprintf("%s: %T", k, v))
	}
	slices.Sort(out)
	return out
}

// squeezeSpaces makes runs of spaces one: protobuf's text format puts one
// or two between fields at random, per build.
func squeezeSpaces(v any) string { return strings.Join(strings.Fields(fmt.Sprint(v)), " ") }

// TestJSONGatewayCountedLikeEtcd: a request through the JSON gateway is a
// client's request, as in etcd (whose gateway dials its own client port):
// counted in grpc_server_handled_total and logged in request stats, with
// the HTTP client's address as the remote. The steps of the Lock recipe
// are not (etcd runs them through its in-process client, around its gRPC
// server): a Lock counts as one Lock, no Txn.
func TestJSONGatewayCountedLikeEtcd(t *testing.T) {
	const method = "/etcdserverpb.KV/DeleteRange"
	flags := WithFlags("--log-level=debug")
	for _, s := range []*Server{StartEtcd(t, flags), StartMetaStore(t, flags)} {
		handled := func() float64 {
			v, _ := scrapeMetrics(t, s.ClientURL()+"/metrics").value("grpc_server_handled_total",
				"grpc_method=DeleteRange", "grpc_code=OK")
			return v
		}
		before := handled()
		resp, err := http.Post(s.ClientURL()+"/v3/kv/deleterange", "application/json", strings.NewReader(`{"key":"`+b64("json-del")+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: POST /v3/kv/deleterange: %s", s.Name, resp.Status)
		}
		if after := handled(); after != before+1 {
			t.Errorf("%s: grpc_server_handled_total{DeleteRange,OK} %v -> %v over one JSON request, want +1", s.Name, before, after)
		}
		line := requestStatsLines(t, s, []string{method})[method]
		if remote := fmt.Sprint(line["remote"]); !strings.HasPrefix(remote, "127.0.0.1") {
			t.Errorf("%s: remote %q, want the HTTP client's address", s.Name, remote)
		}

		txns := func() float64 {
			v, _ := scrapeMetrics(t, s.ClientURL()+"/metrics").value("grpc_server_handled_total", "grpc_method=Txn")
			return v
		}
		before = txns()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		locks := v3lockpb.NewLockClient(s.Client(t).ActiveConnection())
		l, err := locks.Lock(ctx, &v3lockpb.LockRequest{Name: []byte("json-lock")})
		if err != nil {
			t.Fatalf("%s: lock: %v", s.Name, err)
		}
		if _, err := locks.Unlock(ctx, &v3lockpb.UnlockRequest{Key: l.Key}); err != nil {
			t.Fatalf("%s: unlock: %v", s.Name, err)
		}
		if after := txns(); after != before {
			t.Errorf("%s: grpc_server_handled_total{Txn} %v -> %v over a Lock: the recipe's steps were counted", s.Name, before, after)
		}
	}
}

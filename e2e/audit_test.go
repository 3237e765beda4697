package e2e

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditLog: auth changes, logins and auth refusals land in the
// --audit-log-path file with who, what and the result — and the file never
// holds a password or a token.
func TestAuditLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	ms := StartMetaStore(t, WithFlags("--audit-log-path="+path, "--bcrypt-cost=4"))
	ep := ms.Endpoint()
	const rootPW, alicePW = "r00t-secret-pw", "alice-secret-pw"
	for _, args := range [][]string{
		{"user", "add", "root:" + rootPW},
		{"user", "grant-role", "root", "root"},
		{"user", "add", "alice:" + alicePW},
		{"role", "add", "ra"},
		{"role", "grant-permission", "ra", "read", "--prefix", "a/"},
		{"user", "grant-role", "alice", "ra"},
		{"auth", "enable"},
	} {
		if out, errOut, err := Etcdctl(t, ep, args...); err != nil {
			t.Fatalf("%v: %v\n%s%s", args, err, out, errOut)
		}
	}
	// Refused: alice writes, reads outside her prefix; a wrong password.
	Etcdctl(t, ep, "--user=alice:"+alicePW, "put", "a/1", "x")
	Etcdctl(t, ep, "--user=alice:"+alicePW, "get", "b")
	Etcdctl(t, ep, "--user=alice:wrong-pw", "get", "a/1")
	// Allowed reads are not audited.
	if _, errOut, err := Etcdctl(t, ep, "--user=alice:"+alicePW, "get", "a/1"); err != nil {
		t.Fatalf("allowed read: %v %s", err, errOut)
	}
	// Refused through the JSON gateway (no token): the record names the
	// HTTP client's address (its IP), not the gateway's in-process
	// connection.
	resp, err := http.Post(ms.ClientURL()+"/v3/kv/range", "application/json", strings.NewReader(`{"key":"Yg=="}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{rootPW, alicePW, "wrong-pw"} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("audit log holds a password (%q):\n%s", secret, raw)
		}
	}
	var got []string
	var remotes []string
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not a JSON line: %q", sc.Text())
		}
		if tok, ok := m["token"]; ok {
			t.Fatalf("audit record holds a token: %v", tok)
		}
		s := func(k string) string { v, _ := m[k].(string); return v }
		if s("method") == "/etcdserverpb.Maintenance/Status" {
			// The harness's readiness probe (Server.probeStatus), on a
			// loaded host still on its way after the server was ready.
			continue
		}
		remotes = append(remotes, s("remote"))
		got = append(got, strings.Join([]string{s("method"), s("user"), s("target-user") + s("role") + s("key"), s("result")}, " | "))
	}
	want := []string{
		"/etcdserverpb.Auth/UserAdd |  | root | ok",
		"/etcdserverpb.Auth/UserGrantRole |  | rootroot | ok",
		"/etcdserverpb.Auth/UserAdd |  | alice | ok",
		"/etcdserverpb.Auth/RoleAdd |  | ra | ok",
		"/etcdserverpb.Auth/RoleGrantPermission |  | raa/ | ok",
		"/etcdserverpb.Auth/UserGrantRole |  | alicera | ok",
		"/etcdserverpb.Auth/AuthEnable |  |  | ok",
		"/etcdserverpb.Auth/Authenticate | alice |  | ok",
		"/etcdserverpb.KV/Put | alice | a/1 | etcdserver: permission denied",
		"/etcdserverpb.Auth/Authenticate | alice |  | ok",
		"/etcdserverpb.KV/Range | alice | b | etcdserver: permission denied",
		"/etcdserverpb.Auth/Authenticate | alice |  | etcdserver: authentication failed, invalid user ID or password",
		"/etcdserverpb.Auth/Authenticate | alice |  | ok",
		"/etcdserverpb.KV/Range |  | b | etcdserver: user name is empty",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i, r := range remotes {
		// grpc-gateway passes on the HTTP client's IP without its port.
		if r != "127.0.0.1" && !strings.HasPrefix(r, "127.0.0.1:") {
			t.Errorf("record %d (%s): remote %q, want the client's address", i+1, got[i], r)
		}
	}
}

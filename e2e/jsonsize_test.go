package e2e

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// TestJSONGatewayRequestSizeLikeEtcd: etcd's JSON gateway dials its own
// client port, so a JSON request is held to that gRPC server's limit,
// --max-request-bytes plus etcd's 512 KiB of overhead: past it the answer
// is gRPC's ResourceExhausted (HTTP 429), not the proposal's "request is
// too large" (HTTP 400), and a request that is not proposed (a range) is
// refused too. MetaStore must answer the same.
func TestJSONGatewayRequestSizeLikeEtcd(t *testing.T) {
	big := base64.StdEncoding.EncodeToString(make([]byte, 3<<20))
	requests := []struct{ name, path, body string }{
		{"put", "/v3/kv/put", `{"key":"` + b64("big") + `","value":"` + big + `"}`},
		{"range", "/v3/kv/range", `{"key":"` + big + `"}`},
	}
	type answer struct {
		status int
		body   any // the JSON answer, parsed: protojson spaces fields at random
	}
	var got [2][]answer
	for i, s := range []*Server{StartEtcd(t), StartMetaStore(t)} {
		for _, r := range requests {
			resp, err := http.Post(s.ClientURL()+r.path, "application/json", strings.NewReader(r.body))
			if err != nil {
				t.Fatalf("%s: %s: %v", s.Name, r.name, err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("%s: %s: %v", s.Name, r.name, err)
			}
			a := answer{status: resp.StatusCode}
			if err := json.Unmarshal(b, &a.body); err != nil {
				t.Fatalf("%s: %s: not JSON: %q", s.Name, r.name, b)
			}
			got[i] = append(got[i], a)
		}
	}
	for j, r := range requests {
		if e, m := got[0][j], got[1][j]; e.status != m.status || !reflect.DeepEqual(e.body, m.body) {
			t.Errorf("%s of 3 MiB: etcd answers %d %v\nMetaStore answers %d %v", r.name, e.status, e.body, m.status, m.body)
		}
	}
}

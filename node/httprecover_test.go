package node

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/metastore/metastore/health"
	"github.com/metastore/metastore/testkit"
)

// recoveredHTTP is metastore_recovered_panics_total{where="http"} now.
func recoveredHTTP(t *testing.T) float64 {
	t.Helper()
	return testkit.Gather(t, testkit.Registry(t)).Must(t, "metastore_recovered_panics_total", "where", "http")
}

// A panic in a handler of the HTTP side (client port, metrics listeners)
// is answered 500, counted, and the member goes on serving HTTP; one after
// the response has started aborts that response (the client sees it
// broken, not short).
func TestHTTPHandlerPanics(t *testing.T) {
	n := &Node{lg: zap.NewNop()}
	checks := health.New(nil, time.Second, nil) // its checks are not called here
	// The metrics handler stands in for any: it panics when asked to,
	// before or after it has started its response.
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Query().Has("midway"):
			w.Write([]byte("# HELP partial"))
			http.NewResponseController(w).Flush()
			panic("scrape failed midway")
		case r.URL.Query().Has("panic"):
			panic("scrape failed")
		}
		w.Write([]byte("# EOF\n"))
	})
	client, err := n.clientHTTPHandler(checks, metrics)
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]http.Handler{"client": client, "metrics": n.metricsListenerHandler(checks, metrics)} {
		srv := httptest.NewServer(h)
		defer srv.Close()
		get := func(path string) (*http.Response, string, error) {
			resp, err := srv.Client().Get(srv.URL + path)
			if err != nil {
				return nil, "", err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			return resp, string(body), err
		}

		before := recoveredHTTP(t)
		resp, _, err := get("/metrics?panic")
		if err != nil || resp.StatusCode != http.StatusInternalServerError {
			t.Fatalf("%s: GET /metrics whose handler panics: %v %v, want 500", name, resp, err)
		}
		if resp, body, err := get("/metrics"); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: GET /metrics after the panic: %v %q %v", name, resp, body, err)
		}
		if resp, body, err := get("/metrics?midway"); err == nil {
			t.Fatalf("%s: GET /metrics that panics midway: %d %q read in full, want a broken response", name, resp.StatusCode, body)
		}
		if got := recoveredHTTP(t) - before; got != 2 {
			t.Fatalf("%s: metastore_recovered_panics_total{where=http} grew by %v, want 2", name, got)
		}
	}
}

// Handlers behind recoverHTTP can still take over the connection, as the
// JSON gateway's websocket proxy does.
func TestRecoverHTTPPassesHijack(t *testing.T) {
	srv := httptest.NewServer(recoverHTTP(zap.NewNop(), "test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj, ok := w.(http.Hijacker)
		if !ok {
			http.Error(w, "no Hijacker", http.StatusInternalServerError)
			return
		}
		c, rw, err := hj.Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		rw.Flush()
	})))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if body, _ := io.ReadAll(resp.Body); string(body) != "hijacked" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}

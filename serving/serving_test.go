package serving

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math"
	"math/big"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/testkit"
)

// selfSigned is a certificate for 127.0.0.1 and the pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// start serves a gRPC server with the health service and an HTTP handler
// answering "hello" on one listener, with the given traffic and TLS.
func start(t *testing.T, traffic Traffic, tlsCfg *tls.Config) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(HandshakenTLS()))
	}
	gs := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello "+r.Proto) })
	s := New(zap.NewNop(), math.MaxUint32)
	s.Client(l, tlsCfg, traffic, gs, h)
	t.Cleanup(func() { s.Stop(); gs.Stop(); s.Wait() })
	return l.Addr().String()
}

func grpcCheck(addr string, creds credentials.TransportCredentials) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(false))
	return err
}

func httpGet(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestPlainPortServesGRPCAndHTTP(t *testing.T) {
	addr := start(t, GRPCAndHTTP, nil)
	if err := grpcCheck(addr, insecure.NewCredentials()); err != nil {
		t.Fatalf("gRPC: %v", err)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	if body, err := httpGet(c, "http://"+addr+"/"); err != nil || body != "hello HTTP/1.1" {
		t.Fatalf("HTTP/1.1: %q %v", body, err)
	}
	// Both again: the split is per connection, not per listener.
	if err := grpcCheck(addr, insecure.NewCredentials()); err != nil {
		t.Fatalf("gRPC after HTTP: %v", err)
	}
}

func TestTLSPortServesGRPCAndHTTP(t *testing.T) {
	cert, pool := selfSigned(t)
	addr := start(t, GRPCAndHTTP, &tls.Config{Certificates: []tls.Certificate{cert}})
	ch := make(chan bool, 10)
	routed = func(g bool) { ch <- g }
	defer func() { routed = nil }()
	if err := grpcCheck(addr, credentials.NewTLS(&tls.Config{RootCAs: pool})); err != nil {
		t.Fatalf("gRPC over TLS: %v", err)
	}
	// A gRPC client that also offers HTTP/1.1 is served too, by net/http
	// handing it to the gRPC server (etcd's path for all TLS traffic).
	if err := grpcCheck(addr, credentials.NewTLS(&tls.Config{RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}})); err != nil {
		t.Fatalf("gRPC over TLS offering HTTP/1.1 too: %v", err)
	}
	if first, second := <-ch, <-ch; !first || second {
		t.Fatalf("connections routed to the gRPC transport: %v, %v, want true, false", first, second)
	}
	h1 := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if body, err := httpGet(h1, "https://"+addr+"/"); err != nil || body != "hello HTTP/1.1" {
		t.Fatalf("HTTP/1.1 over TLS: %q %v", body, err)
	}
	// curl and browsers negotiate HTTP/2 by ALPN: a JSON request over
	// HTTP/2 must reach the HTTP handler, not the gRPC server.
	h2 := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	if body, err := httpGet(h2, "https://"+addr+"/"); err != nil || body != "hello HTTP/2.0" {
		t.Fatalf("HTTP/2 over TLS: %q %v", body, err)
	}
}

func TestSplitTraffic(t *testing.T) {
	grpcOnly := start(t, GRPCOnly, nil)
	if err := grpcCheck(grpcOnly, insecure.NewCredentials()); err != nil {
		t.Fatalf("gRPC-only port, gRPC: %v", err)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	if _, err := httpGet(c, "http://"+grpcOnly+"/"); err == nil {
		t.Fatal("gRPC-only port answered HTTP/1.1")
	}
	httpOnly := start(t, HTTPOnly, nil)
	if body, err := httpGet(c, "http://"+httpOnly+"/"); err != nil || body != "hello HTTP/1.1" {
		t.Fatalf("HTTP-only port, HTTP: %q %v", body, err)
	}
	if err := grpcCheck(httpOnly, insecure.NewCredentials()); err == nil {
		t.Fatal("HTTP-only port answered gRPC")
	}
}

// A panic in a TLS handshake's callbacks (the member's certificate checks
// run there, on what a client not yet authenticated sent) ends that
// connection alone, counted: the listener serves the next one.
func TestTLSHandshakePanicEndsOnlyItsConnection(t *testing.T) {
	cert, pool := selfSigned(t)
	var panicNext atomic.Bool
	panicNext.Store(true)
	addr := start(t, GRPCAndHTTP, &tls.Config{Certificates: []tls.Certificate{cert},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			if panicNext.CompareAndSwap(true, false) {
				panic("injected panic in a handshake callback")
			}
			return nil, nil
		}})
	reg := testkit.Registry(t)
	panics := func() float64 {
		return testkit.Gather(t, reg).Total("metastore_recovered_panics_total", "where", actors.PanicTLSHandshake)
	}
	before := panics()
	if c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool}); err == nil {
		c.Close()
		t.Fatal("handshake whose callback panicked succeeded")
	}
	if n := panics() - before; n != 1 {
		t.Fatalf("metastore_recovered_panics_total{where=tls-handshake} grew by %v, want 1", n)
	}
	h1 := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if body, err := httpGet(h1, "https://"+addr+"/"); err != nil || body != "hello HTTP/1.1" {
		t.Fatalf("next connection: %q %v", body, err)
	}
}

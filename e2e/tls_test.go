package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// testCA issues certificates for TLS tests.
type testCA struct {
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA certificate, PEM
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{dir: dir, cert: cert, key: key, file: filepath.Join(dir, name+"-ca.pem")}
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

var certSerial = big.NewInt(100)

// issue writes a certificate for cn (server and client use, valid for
// 127.0.0.1) and its key; it returns their paths.
func (ca *testCA) issue(t *testing.T, cn string) (certFile, keyFile string) {
	t.Helper()
	return ca.issueFor(t, cn, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
}

// issueFor issues a certificate for cn usable only as eku says.
func (ca *testCA) issueFor(t *testing.T, cn string, eku ...x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	return ca.issueSANs(t, cn, []net.IP{net.ParseIP("127.0.0.1")}, []string{"localhost"}, eku...)
}

// issueSANs issues a certificate for cn with these IP and DNS SANs.
func (ca *testCA) issueSANs(t *testing.T, cn string, ips []net.IP, dns []string, eku ...x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	certSerial.Add(certSerial, big.NewInt(1))
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).Set(certSerial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: eku,
		IPAddresses: ips, DNSNames: dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(ca.dir, cn+".pem"), filepath.Join(ca.dir, cn+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func tlsClient(t *testing.T, endpoints []string, ca, cert, key string) (*clientv3.Client, error) {
	t.Helper()
	pool := x509.NewCertPool()
	b, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(b)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: cfg, DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
	if err == nil {
		t.Cleanup(func() { cli.Close() })
	}
	return cli, err
}

// tlsGet reads a key through a new TLS client (trusting ca, presenting
// cert if not empty), within 3 seconds: nil if the request was served.
func tlsGet(t *testing.T, endpoints []string, ca, cert, key string) error {
	t.Helper()
	cli, err := tlsClient(t, endpoints, ca, cert, key)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = cli.Get(ctx, "k")
	return err
}

// TestClusterTLS: a 3-member cluster with https client and peer URLs and
// client certificate authentication on both: it replicates, etcdctl with
// the CA and a client certificate works, a client without a certificate or
// trusting another CA is refused, and with auth on a request without a
// token runs as the user its certificate's CN names.
func TestClusterTLS(t *testing.T) {
	eachKind(t, func(t *testing.T, kind Kind) {
		dir := t.TempDir()
		ca := newTestCA(t, dir, "cluster")
		other := newTestCA(t, dir, "other")
		srvCert, srvKey := ca.issue(t, "server")
		rootCert, rootKey := ca.issue(t, "root")
		aliceCert, aliceKey := ca.issue(t, "alice")
		strangerCert, strangerKey := other.issue(t, "stranger")
		servers := StartCluster(t, kind, 3, WithHTTPS(true, true), WithFlags(
			"--cert-file="+srvCert, "--key-file="+srvKey, "--trusted-ca-file="+ca.file, "--client-cert-auth",
			"--peer-cert-file="+srvCert, "--peer-key-file="+srvKey, "--peer-trusted-ca-file="+ca.file, "--peer-client-cert-auth",
		))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		eps := Endpoints(servers)
		root, err := tlsClient(t, eps, ca.file, rootCert, rootKey)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := root.Put(ctx, "k", "v"); err != nil {
			t.Fatalf("put over TLS: %v", err)
		}
		for _, s := range servers {
			c, err := tlsClient(t, []string{s.Endpoint()}, ca.file, rootCert, rootKey)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Get(ctx, "k")
			if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
				t.Fatalf("get through %s: %v %v", s.Name, resp, err)
			}
			st, err := c.Status(ctx, s.Endpoint())
			if err != nil || st.Leader == 0 {
				t.Fatalf("status of %s: %v %v", s.Name, st, err)
			}
		}
		// etcdctl with the CA and a certificate.
		out, err := runEtcdctl(t, "--endpoints="+strings.Join(eps, ","), "--cacert="+ca.file, "--cert="+rootCert, "--key="+rootKey, "get", "k", "--print-value-only")
		if err != nil || strings.TrimSpace(out) != "v" {
			t.Fatalf("etcdctl get over TLS: %q %v", out, err)
		}
		// No client certificate, or a certificate from another CA: refused.
		for name, c := range map[string][2]string{"no certificate": {"", ""}, "another CA's certificate": {strangerCert, strangerKey}} {
			if tlsGet(t, eps[:1], ca.file, c[0], c[1]) == nil {
				t.Errorf("%s: request accepted", name)
			}
		}
		// Trusting another CA: the server's certificate is refused.
		if tlsGet(t, eps[:1], other.file, rootCert, rootKey) == nil {
			t.Error("a client trusting another CA accepted the server")
		}
		// With auth on, the certificate's CN is the user.
		for _, args := range [][]string{
			{"user", "add", "root:rootpw"}, {"user", "grant-role", "root", "root"},
			{"user", "add", "alice:alicepw"}, {"role", "add", "app"},
			{"role", "grant-permission", "app", "readwrite", "--prefix", "app/"},
			{"user", "grant-role", "alice", "app"}, {"auth", "enable"},
		} {
			if out, err := runEtcdctl(t, append([]string{"--endpoints=" + eps[0], "--cacert=" + ca.file, "--cert=" + rootCert, "--key=" + rootKey}, args...)...); err != nil {
				t.Fatalf("etcdctl %v: %v %s", args, err, out)
			}
		}
		alice, err := tlsClient(t, eps, ca.file, aliceCert, aliceKey)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.Put(ctx, "app/x", "1"); err != nil {
			t.Errorf("alice (by CN) put app/x: %v", err)
		}
		if _, err := alice.Put(ctx, "other", "1"); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("alice (by CN) put other: %v, want permission denied", err)
		}
		if _, err := root.Put(ctx, "other", "1"); err != nil {
			t.Errorf("root (by CN) put other: %v", err)
		}
	})
}

// runEtcdctl runs the reference etcdctl with args (endpoints included) and
// returns its stdout, with stderr appended on failure.
func runEtcdctl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, errOut, err := run(RefBin(t, "etcdctl"), args, time.Minute)
	if err != nil {
		return out + errOut, err
	}
	return out, nil
}

// TestClusterTLSMembership: on a 3-member cluster with https client and
// peer URLs and certificate authentication on both sides, etcdctl's member
// add (learner) / promote / move-leader / remove and endpoint status work
// as on plain http, and killing the leader under writers loses nothing
// acknowledged.
func TestClusterTLSMembership(t *testing.T) {
	eachKind(t, func(t *testing.T, kind Kind) {
		dir := t.TempDir()
		ca := newTestCA(t, dir, "cluster")
		srvCert, srvKey := ca.issue(t, "server")
		rootCert, rootKey := ca.issue(t, "root")
		flags := WithFlags(
			"--cert-file="+srvCert, "--key-file="+srvKey, "--trusted-ca-file="+ca.file, "--client-cert-auth",
			"--peer-cert-file="+srvCert, "--peer-key-file="+srvKey, "--peer-trusted-ca-file="+ca.file, "--peer-client-cert-auth",
			"--snapshot-count=100", "--snapshot-catchup-entries=10",
		)
		servers := StartCluster(t, kind, 3, WithHTTPS(true, true), flags)
		eps := Endpoints(servers)
		ctl := func(args ...string) string {
			t.Helper()
			all := append([]string{"--endpoints=" + strings.Join(eps, ","), "--cacert=" + ca.file,
				"--cert=" + rootCert, "--key=" + rootKey}, args...)
			// A voter add needs the members connected for 5 s (strict
			// reconfig check): retry "unhealthy cluster" a while.
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
				out, err := runEtcdctl(t, all...)
				if err == nil {
					return out
				}
				if !strings.Contains(out, "unhealthy cluster") && !strings.Contains(out, "not in sync") || time.Now().After(deadline) {
					t.Fatalf("etcdctl %v: %v\n%s", args, err, out)
				}
			}
		}
		if out := ctl("endpoint", "status", "-w", "json"); strings.Count(out, `"leader"`) != 3 {
			t.Fatalf("endpoint status: %s", out)
		}
		// Add a learner, start it (https, existing), promote it.
		learner := NewMember(t, kind, string(kind)+"-c4", WithHTTPS(true, true), flags)
		out := ctl("member", "add", learner.Name, "--peer-urls="+learner.PeerURL(), "--learner")
		if !strings.Contains(out, "added as learner") {
			t.Fatalf("member add: %s", out)
		}
		learner.Join(t, servers)
		eps = append(eps, learner.Endpoint())
		var id string
		for _, line := range strings.Split(ctl("member", "list"), "\n") {
			if strings.Contains(line, learner.PeerURL()) {
				id = strings.TrimSpace(strings.Split(line, ",")[0])
			}
		}
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(300 * time.Millisecond) {
			all := []string{"--endpoints=" + strings.Join(Endpoints(servers), ","), "--cacert=" + ca.file,
				"--cert=" + rootCert, "--key=" + rootKey, "member", "promote", id}
			out, err := runEtcdctl(t, all...)
			if err == nil && strings.Contains(out, "promoted") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("member promote: %v %s", err, out)
			}
		}
		// Move leadership to the new member, then remove it.
		if out := ctl("move-leader", id); !strings.Contains(out, "Leadership transferred") {
			t.Fatalf("move-leader: %s", out)
		}
		ctl("move-leader", memberIDOf(t, ctl("endpoint", "status", "--endpoints="+servers[0].Endpoint(), "-w", "json")))
		eps = eps[:3]
		if out := ctl("member", "remove", id); !strings.Contains(out, "removed") {
			t.Fatalf("member remove: %s", out)
		}
		if st := learner.WaitExit(15 * time.Second); st == nil {
			t.Errorf("%s still runs after its removal", learner.Name)
		}

		// A member stopped while the log moves past what it has catches up
		// by a snapshot sent over the TLS peer connection.
		behind := servers[2]
		behind.Stop()
		cli, err := tlsClient(t, Endpoints(servers[:2]), ca.file, rootCert, rootKey)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 300; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := cli.Put(ctx, fmt.Sprintf("snap-%03d", i), "v")
			cancel()
			if err != nil {
				t.Fatalf("put while a member is down: %v", err)
			}
		}
		behind.Restart(t)
		bc, err := tlsClient(t, []string{behind.Endpoint()}, ca.file, rootCert, rootKey)
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			resp, err := bc.Get(ctx, "snap-299", clientv3.WithSerializable())
			cancel()
			if err == nil && len(resp.Kvs) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not catch up after its restart: %v %v", behind.Name, resp, err)
			}
		}
		if kind == KindMetaStore && !strings.Contains(behind.Log(), "installed snapshot from leader") {
			t.Errorf("%s caught up without a snapshot", behind.Name)
		}

		// Kill -9 the leader under 8 writers; nothing acknowledged is lost.
		cli, err = tlsClient(t, Endpoints(servers), ca.file, rootCert, rootKey)
		if err != nil {
			t.Fatal(err)
		}
		acked := make(chan string, 100000)
		stop := make(chan struct{})
		var done = make(chan struct{}, 8)
		for w := 0; w < 8; w++ {
			go func() {
				defer func() { done <- struct{}{} }()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					k := fmt.Sprintf("tls-w%d-%05d", w, i)
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
					_, err := cli.Put(ctx, k, "v")
					cancel()
					if err == nil {
						acked <- k
					}
				}
			}()
		}
		time.Sleep(time.Second)
		leader := -1
		for i, s := range servers {
			c, err := tlsClient(t, []string{s.Endpoint()}, ca.file, rootCert, rootKey)
			if err != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st, err := c.Status(ctx, s.Endpoint())
			cancel()
			if err == nil && st.Leader == st.Header.MemberId {
				leader = i
			}
		}
		if leader < 0 {
			t.Fatal("no leader found")
		}
		servers[leader].Kill()
		time.Sleep(3 * time.Second)
		close(stop)
		for w := 0; w < 8; w++ {
			<-done
		}
		close(acked)
		servers[leader].Restart(t)
		var keys []string
		for k := range acked {
			keys = append(keys, k)
		}
		if len(keys) < 50 {
			t.Fatalf("only %d writes acknowledged", len(keys))
		}
		for _, s := range servers {
			c, err := tlsClient(t, []string{s.Endpoint()}, ca.file, rootCert, rootKey)
			if err != nil {
				t.Fatal(err)
			}
			var resp *clientv3.GetResponse
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				resp, err = c.Get(ctx, "tls-w", clientv3.WithPrefix(), clientv3.WithKeysOnly())
				cancel()
				if err == nil || time.Now().After(deadline) {
					break
				}
			}
			if err != nil {
				t.Fatalf("%s: %v", s.Name, err)
			}
			have := map[string]bool{}
			for _, kv := range resp.Kvs {
				have[string(kv.Key)] = true
			}
			for _, k := range keys {
				if !have[k] {
					t.Fatalf("%s: acknowledged %s missing", s.Name, k)
				}
			}
		}
		t.Logf("%s: %d writes acknowledged across the leader kill, all present on every member", kind, len(keys))
	})
}

// memberIDOf is the member id (decimal, as etcdctl's JSON has it) in the
// output of `endpoint status -w json` for one endpoint, in hex.
func memberIDOf(t *testing.T, statusJSON string) string {
	t.Helper()
	i := strings.Index(statusJSON, `"member_id":`)
	if i < 0 {
		t.Fatalf("no member_id in %s", statusJSON)
	}
	rest := statusJSON[i+len(`"member_id":`):]
	j := strings.IndexAny(rest, ",}")
	id, err := strconv.ParseUint(strings.TrimSpace(rest[:j]), 10, 64)
	if err != nil {
		t.Fatalf("member_id in %s: %v", statusJSON, err)
	}
	return strconv.FormatUint(id, 16)
}

// revoke writes (or rewrites) a CRL signed by ca revoking the certificates
// of certFiles.
func (ca *testCA) revoke(t *testing.T, certFiles ...string) string {
	t.Helper()
	var entries []x509.RevocationListEntry
	for _, f := range certFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: cert.SerialNumber, RevocationTime: time.Now()})
	}
	certSerial.Add(certSerial, big.NewInt(1))
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:     new(big.Int).Set(certSerial),
		ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(time.Hour),
		RevokedCertificateEntries: entries,
	}, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(ca.dir, "revoked.crl") // DER, as etcd reads it
	if err := os.WriteFile(path, der, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTLSClientCRL: with --client-crl-file, a client whose certificate is
// revoked is refused; others are served.
func TestTLSClientCRL(t *testing.T) {
	eachKind(t, func(t *testing.T, kind Kind) {
		dir := t.TempDir()
		ca := newTestCA(t, dir, "crl")
		srvCert, srvKey := ca.issue(t, "server")
		goodCert, goodKey := ca.issue(t, "good")
		badCert, badKey := ca.issue(t, "bad")
		crl := ca.revoke(t, badCert)
		s := start(t, kind, []Option{WithHTTPS(true, false), WithFlags("--cert-file="+srvCert, "--key-file="+srvKey,
			"--trusted-ca-file="+ca.file, "--client-cert-auth", "--client-crl-file="+crl)})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		good, err := tlsClient(t, []string{s.Endpoint()}, ca.file, goodCert, goodKey)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := good.Put(ctx, "k", "v"); err != nil {
			t.Fatalf("unrevoked certificate: %v", err)
		}
		if tlsGet(t, []string{s.Endpoint()}, ca.file, badCert, badKey) == nil {
			t.Fatal("a revoked certificate was served")
		}
		// Revoking another certificate takes effect without a restart.
		ca.revoke(t, badCert, goodCert)
		if tlsGet(t, []string{s.Endpoint()}, ca.file, goodCert, goodKey) == nil {
			t.Fatal("a certificate revoked while running was served to a new connection")
		}
	})
}

// TestTLSVersions: --tls-min-version / --tls-max-version bound the TLS
// versions the client listener speaks, as etcd's; bad values make both
// servers exit 1 with etcd's message and error.
func TestTLSVersions(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "versions")
	srvCert, srvKey := ca.issue(t, "server")
	pool := x509.NewCertPool()
	pemCA, err := os.ReadFile(ca.file)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pemCA)
	// negotiated is the TLS version a handshake with a client allowing
	// [1.2, maxV] ends with (0: refused).
	negotiated := func(s *Server, maxV uint16) uint16 {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", s.Endpoint(),
			&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12, MaxVersion: maxV, NextProtos: []string{"h2"}})
		if err != nil {
			return 0
		}
		defer c.Close()
		return c.ConnectionState().Version
	}
	eachKind(t, func(t *testing.T, kind Kind) {
		certs := []string{"--cert-file=" + srvCert, "--key-file=" + srvKey}
		only13 := start(t, kind, []Option{WithHTTPS(true, false), WithFlags(append(certs, "--tls-min-version=TLS1.3")...)})
		if v := negotiated(only13, tls.VersionTLS12); v != 0 {
			t.Errorf("--tls-min-version=TLS1.3: a TLS 1.2 client got in (version %x)", v)
		}
		if v := negotiated(only13, 0); v != tls.VersionTLS13 {
			t.Errorf("--tls-min-version=TLS1.3: negotiated %x, want TLS 1.3", v)
		}
		only12 := start(t, kind, []Option{WithHTTPS(true, false), WithFlags(append(certs, "--tls-max-version=TLS1.2")...)})
		if v := negotiated(only12, 0); v != tls.VersionTLS12 {
			t.Errorf("--tls-max-version=TLS1.2: negotiated %x, want TLS 1.2", v)
		}
	})
	for _, args := range [][]string{
		{"--tls-min-version=TLS1.1"},
		{"--tls-max-version=tls1.3"},
		{"--tls-min-version=TLS1.3", "--tls-max-version=TLS1.2"},
		{"--tls-min-version=TLS1.3", "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
	} {
		sameFailedStart(t, fmt.Sprint(args), args)
	}
}

// TestTLSAllowedNames: --client-cert-allowed-hostname and
// --peer-cert-allowed-cn admit only certificates with an allowed SAN or
// CN, as etcd's; both flags together are refused.
func TestTLSAllowedNames(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "allowed")
	srvCert, srvKey := ca.issue(t, "server")
	member, memberKey := ca.issue(t, "member")
	intruder, intruderKey := ca.issue(t, "intruder")
	eachKind(t, func(t *testing.T, kind Kind) {
		clientFlags := []string{"--cert-file=" + srvCert, "--key-file=" + srvKey,
			"--trusted-ca-file=" + ca.file, "--client-cert-auth"}
		for _, c := range []struct {
			hostname string
			served   bool
		}{{"localhost", true}, {"other.example", false}} {
			s := start(t, kind, []Option{WithHTTPS(true, false), WithFlags(append(clientFlags, "--client-cert-allowed-hostname="+c.hostname)...)})
			err := tlsGet(t, []string{s.Endpoint()}, ca.file, member, memberKey)
			if served := err == nil; served != c.served {
				t.Errorf("--client-cert-allowed-hostname=%s: served %v (%v), want %v", c.hostname, served, err, c.served)
			}
			s.Stop()
		}
		s := start(t, kind, []Option{WithHTTPS(false, true), WithFlags("--peer-cert-file="+srvCert, "--peer-key-file="+srvKey,
			"--peer-trusted-ca-file="+ca.file, "--peer-client-cert-auth", "--peer-cert-allowed-cn=member,server")})
		if code := peerMembers(t, s, ca.file, member, memberKey); code != http.StatusOK {
			t.Errorf("peer certificate with an allowed CN: status %d", code)
		}
		if code := peerMembers(t, s, ca.file, intruder, intruderKey); code != 0 {
			t.Errorf("peer certificate with CN intruder: status %d, want the handshake refused", code)
		}
	})
	args := []string{"--listen-peer-urls=https://127.0.0.1:" + strconv.Itoa(FreePort(t)),
		"--peer-cert-file=" + srvCert, "--peer-key-file=" + srvKey,
		"--peer-cert-allowed-cn=member", "--peer-cert-allowed-hostname=localhost"}
	sameFailedStart(t, "both allowed CNs and hostnames", args)
}

// TestClusterPeerClientCert: with --peer-client-cert-file a member dials
// its peers with that certificate: here the peer server certificate is
// not valid for client authentication, so the members only form a
// cluster if they present the client one (as etcd's).
func TestClusterPeerClientCert(t *testing.T) {
	eachKind(t, func(t *testing.T, kind Kind) {
		dir := t.TempDir()
		ca := newTestCA(t, dir, "peers")
		srvCert, srvKey := ca.issueFor(t, "peer-server", x509.ExtKeyUsageServerAuth)
		cliCert, cliKey := ca.issueFor(t, "peer-client", x509.ExtKeyUsageClientAuth)
		servers := StartCluster(t, kind, 2, WithHTTPS(false, true), WithFlags(
			"--peer-cert-file="+srvCert, "--peer-key-file="+srvKey, "--peer-trusted-ca-file="+ca.file,
			"--peer-client-cert-auth", "--peer-client-cert-file="+cliCert, "--peer-client-key-file="+cliKey,
		))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cli := servers[0].Client(t)
		for {
			st, err := cli.Status(ctx, servers[0].Endpoint())
			if err == nil && st.Leader != 0 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("no leader elected: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := cli.Put(ctx, "k", "v"); err != nil {
			t.Fatalf("put: %v", err)
		}
		resp, err := servers[1].Client(t).Get(ctx, "k")
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("get through the other member: %v %v", resp, err)
		}
	})
	dir := t.TempDir()
	ca := newTestCA(t, dir, "bad")
	srvCert, srvKey := ca.issue(t, "server")
	args := []string{"--listen-peer-urls=https://127.0.0.1:" + strconv.Itoa(FreePort(t)),
		"--peer-cert-file=" + srvCert, "--peer-key-file=" + srvKey, "--peer-client-cert-file=" + srvCert}
	sameFailedStart(t, "client cert without key", args)
}

// TestPeerClientSANs: a peer listener refuses a client certificate whose
// SANs do not name the address it connects from, unless
// --peer-skip-client-san-verification, as etcd's.
func TestPeerClientSANs(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "sans")
	srvCert, srvKey := ca.issue(t, "server")
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	here, hereKey := ca.issueSANs(t, "here", []net.IP{net.ParseIP("127.0.0.1")}, nil, both...)
	named, namedKey := ca.issueSANs(t, "named", nil, []string{"localhost"}, both...)
	elsewhere, elsewhereKey := ca.issueSANs(t, "elsewhere", []net.IP{net.ParseIP("10.9.9.9")}, nil, both...)
	eachKind(t, func(t *testing.T, kind Kind) {
		flags := []string{"--peer-cert-file=" + srvCert, "--peer-key-file=" + srvKey,
			"--peer-trusted-ca-file=" + ca.file, "--peer-client-cert-auth"}
		s := start(t, kind, []Option{WithHTTPS(false, true), WithFlags(flags...)})
		for name, c := range map[string]struct {
			cert, key string
			want      bool
		}{
			"IP SAN of the source address": {here, hereKey, true},
			"DNS SAN resolving to it":      {named, namedKey, true},
			"IP SAN of another address":    {elsewhere, elsewhereKey, false},
		} {
			if got := peerMembers(t, s, ca.file, c.cert, c.key) == http.StatusOK; got != c.want {
				t.Errorf("%s: served %v, want %v", name, got, c.want)
			}
		}
		s.Stop()
		skip := start(t, kind, []Option{WithHTTPS(false, true), WithFlags(append(flags, "--peer-skip-client-san-verification")...)})
		if peerMembers(t, skip, ca.file, elsewhere, elsewhereKey) != http.StatusOK {
			t.Error("--peer-skip-client-san-verification: a certificate for another address was refused")
		}
	})
}

// peerMembers fetches /members from s's peer listener presenting cert,
// trusting caFile: the HTTP status, or 0 when the handshake was refused.
func peerMembers(t *testing.T, s *Server, caFile, cert, key string) int {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	pemCA, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCA)
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}}}
	resp, err := hc.Get(s.PeerURL() + "/members")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

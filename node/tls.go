package node

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// TLSFiles are one side's certificate options, etcd's --cert-file,
// --key-file, --trusted-ca-file, --client-cert-auth, --client-crl-file,
// --auto-tls (or their --peer-* twins), --cipher-suites and
// --tls-min-version / --tls-max-version.
type TLSFiles struct {
	CertFile, KeyFile string
	// ClientCertFile / ClientKeyFile (--peer-client-cert-file, ...): the
	// certificate a member presents when it dials; CertFile when unset.
	ClientCertFile, ClientKeyFile string
	TrustedCAFile                 string
	CRLFile                       string
	ClientCertAuth                bool
	AutoTLS                       bool
	CipherSuites                  []uint16
	// MinVersion and MaxVersion bound the TLS versions (0: TLS 1.2 and
	// Go's highest).
	MinVersion, MaxVersion uint16
	// AllowedCNs / AllowedHostnames (--peer-cert-allowed-cn,
	// --peer-cert-allowed-hostname, --client-cert-allowed-hostname): the
	// other side's verified certificate must have one of these common
	// names, or be valid for one of these hostnames. As etcd, the check
	// applies to both sides of a connection.
	AllowedCNs, AllowedHostnames []string
	// SkipVerify: the certificates are self-signed (auto TLS): a member
	// dialing a peer does not verify the peer's chain, as etcd.
	SkipVerify bool
}

// Empty reports whether no certificate is configured.
func (f TLSFiles) Empty() bool { return f.CertFile == "" && f.KeyFile == "" }

// keyPair loads the certificate on each handshake that needs it, from
// files reread when they change, so certificates rotate without a restart
// (as etcd's do).
type keyPair struct {
	cert, key string
	mu        sync.Mutex
	modCert   time.Time
	modKey    time.Time
	pair      *tls.Certificate
}

func (k *keyPair) get() (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ci, err := os.Stat(k.cert)
	if err != nil {
		return nil, err
	}
	ki, err := os.Stat(k.key)
	if err != nil {
		return nil, err
	}
	if k.pair != nil && ci.ModTime().Equal(k.modCert) && ki.ModTime().Equal(k.modKey) {
		return k.pair, nil
	}
	pair, err := tls.LoadX509KeyPair(k.cert, k.key)
	if err != nil {
		return nil, err
	}
	k.pair, k.modCert, k.modKey = &pair, ci.ModTime(), ki.ModTime()
	return k.pair, nil
}

// baseConfig is what the server and client sides share: the key pairs
// (checked now, so a bad file fails the start; the client's is the
// explicit client pair, else the same as the server's), TLS 1.2 at least,
// and the cipher suites.
func (f TLSFiles) baseConfig() (cfg *tls.Config, server, client *keyPair, err error) {
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, nil, nil, fmt.Errorf("KeyFile and CertFile must both be present[key: %v, cert: %v]", f.KeyFile, f.CertFile)
	}
	server = &keyPair{cert: f.CertFile, key: f.KeyFile}
	if _, err := server.get(); err != nil {
		return nil, nil, nil, err
	}
	if (f.ClientKeyFile == "") != (f.ClientCertFile == "") {
		return nil, nil, nil, fmt.Errorf("ClientKeyFile and ClientCertFile must both be present or both absent: key: %v, cert: %v]", f.ClientKeyFile, f.ClientCertFile)
	}
	client = server
	if f.ClientCertFile != "" {
		client = &keyPair{cert: f.ClientCertFile, key: f.ClientKeyFile}
		if _, err := client.get(); err != nil {
			return nil, nil, nil, err
		}
	}
	if len(f.AllowedCNs) > 0 && len(f.AllowedHostnames) > 0 {
		return nil, nil, nil, fmt.Errorf("AllowedCNs and AllowedHostnames are mutually exclusive (cns=%q, hostnames=%q)", f.AllowedCNs, f.AllowedHostnames)
	}
	cfg = &tls.Config{MinVersion: max(f.MinVersion, tls.VersionTLS12), MaxVersion: f.MaxVersion}
	if len(f.CipherSuites) > 0 {
		cfg.CipherSuites = f.CipherSuites
	}
	cfg.VerifyPeerCertificate = f.verifyAllowed
	return cfg, server, client, nil
}

// verifyAllowed is the AllowedCNs / AllowedHostnames check: some verified
// chain's leaf must match (none configured: nothing to check).
func (f TLSFiles) verifyAllowed(_ [][]byte, chains [][]*x509.Certificate) error {
	if len(f.AllowedCNs) == 0 && len(f.AllowedHostnames) == 0 {
		return nil
	}
	for _, chain := range chains {
		if len(chain) == 0 {
			continue
		}
		if slices.Contains(f.AllowedCNs, chain[0].Subject.CommonName) {
			return nil
		}
		for _, h := range f.AllowedHostnames {
			if chain[0].VerifyHostname(h) == nil {
				return nil
			}
		}
	}
	return errors.New("client certificate authentication failed")
}

func (f TLSFiles) caPool() (*x509.CertPool, error) {
	pem, err := os.ReadFile(f.TrustedCAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificates in %s", f.TrustedCAFile)
	}
	return pool, nil
}

// ServerConfig is the listener's TLS: as etcd, a trusted CA or
// --client-cert-auth makes a verified client certificate mandatory, and
// a CRL file refuses revoked ones.
func (f TLSFiles) ServerConfig() (*tls.Config, error) {
	cfg, kp, _, err := f.baseConfig()
	if err != nil {
		return nil, err
	}
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return kp.get() }
	if f.TrustedCAFile != "" || f.ClientCertAuth {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if f.TrustedCAFile != "" {
		if cfg.ClientCAs, err = f.caPool(); err != nil {
			return nil, err
		}
	}
	if f.CRLFile != "" {
		crl := &crlFile{path: f.CRLFile}
		if _, err := crl.revoked(); err != nil {
			return nil, err
		}
		allowed := cfg.VerifyPeerCertificate // baseConfig's check, then the CRL
		cfg.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
			if err := allowed(raw, chains); err != nil {
				return err
			}
			revoked, err := crl.revoked()
			if err != nil {
				return err // fail closed, as etcd does on an unreadable CRL
			}
			for _, chain := range chains {
				for _, c := range chain {
					if revoked[c.SerialNumber.String()] {
						return fmt.Errorf("certificate %s (CN %q) is revoked", c.SerialNumber, c.Subject.CommonName)
					}
				}
			}
			return nil
		}
	}
	cfg.NextProtos = []string{"h2", "http/1.1"}
	return cfg, nil
}

// ClientConfig is the TLS a member dials its peers with: it presents its
// own certificate (peers may require one) and trusts the peer CA.
func (f TLSFiles) ClientConfig() (*tls.Config, error) {
	cfg, _, kp, err := f.baseConfig()
	if err != nil {
		return nil, err
	}
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return kp.get() }
	if f.TrustedCAFile != "" {
		if cfg.RootCAs, err = f.caPool(); err != nil {
			return nil, err
		}
	}
	cfg.InsecureSkipVerify = f.SkipVerify
	return cfg, nil
}

// crlFile is a revocation list reread when its file changes, so that
// revoking a certificate takes effect without a restart (etcd reads it on
// every connection).
type crlFile struct {
	path string
	mu   sync.Mutex
	mod  time.Time
	set  map[string]bool
}

func (c *crlFile) revoked() (map[string]bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := os.Stat(c.path)
	if err != nil {
		return nil, err
	}
	if c.set != nil && st.ModTime().Equal(c.mod) {
		return c.set, nil
	}
	set, err := loadCRL(c.path)
	if err != nil {
		return nil, err
	}
	c.set, c.mod = set, st.ModTime()
	return set, nil
}

func loadCRL(path string) (map[string]bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	}
	crl, err := x509.ParseRevocationList(b)
	if err != nil {
		return nil, fmt.Errorf("client-crl-file %s: %w", path, err)
	}
	out := map[string]bool{}
	for _, e := range crl.RevokedCertificateEntries {
		out[e.SerialNumber.String()] = true
	}
	return out, nil
}

// ParseTLSVersions reads --tls-min-version and --tls-max-version with
// etcd's values (TLS1.2, TLS1.3; an empty max is Go's highest) and checks
// them, and the cipher suites, as etcd does.
func ParseTLSVersions(minName, maxName string, cipherSuites []uint16) (minV, maxV uint16, err error) {
	parse := func(name string) (uint16, error) {
		switch name {
		case "":
			return 0, nil
		case "TLS1.2":
			return tls.VersionTLS12, nil
		case "TLS1.3":
			return tls.VersionTLS13, nil
		}
		return 0, fmt.Errorf("unexpected TLS version %q (must be one of: TLS1.2, TLS1.3)", name)
	}
	if minV, err = parse(minName); err != nil {
		return 0, 0, err
	}
	if maxV, err = parse(maxName); err != nil {
		return 0, 0, err
	}
	if maxV != 0 && minV > maxV {
		return 0, 0, fmt.Errorf("min version (%s) is greater than max version (%s)", minName, maxName)
	}
	if minV == tls.VersionTLS13 && len(cipherSuites) > 0 {
		return 0, 0, fmt.Errorf("cipher suites cannot be configured when only TLS1.3 is enabled")
	}
	return minV, maxV, nil
}

// ParseCipherSuites reads --cipher-suites: Go's names of TLS 1.2 suites
// (TLS 1.3 suites are not configurable), comma separated.
func ParseCipherSuites(names []string) ([]uint16, error) {
	known := map[string]uint16{}
	for _, s := range tls.CipherSuites() {
		known[s.Name] = s.ID
	}
	for _, s := range tls.InsecureCipherSuites() {
		known[s.Name] = s.ID
	}
	var out []uint16
	for _, n := range names {
		id, ok := known[n]
		if !ok {
			return nil, fmt.Errorf("unexpected TLS cipher suite %q", n)
		}
		out = append(out, id)
	}
	return out, nil
}

// autoTLS is etcd's --auto-tls / --peer-auto-tls: a self-signed
// certificate for the listen URLs' hosts in dir (made once, reused on
// restart), valid for validityYears.
func autoTLS(lg *zap.Logger, f TLSFiles, dir string, listenURLs []string, validityYears uint) (TLSFiles, error) {
	if !f.AutoTLS {
		return f, nil
	}
	if !f.Empty() {
		lg.Warn("ignoring auto TLS since certs given")
		return f, nil
	}
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	f.CertFile, f.KeyFile, f.SkipVerify = certPath, keyPath, true
	if _, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		return f, nil
	}
	if validityYears == 0 {
		validityYears = 1
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return f, err
	}
	tmpl := x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"metastore"}},
		NotBefore:    time.Now(),
		NotAfter:     time.Now().AddDate(int(validityYears), 0, 0),
		KeyUsage:     x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, raw := range listenURLs {
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		host := u.Hostname()
		if ip := net.ParseIP(host); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if host != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, host)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, err
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
	if err != nil {
		return f, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return f, err
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return f, err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return f, err
	}
	lg.Info("created self-signed certificate", zap.String("path", certPath))
	return f, nil
}

// errNeedCert is etcd's refusal of an https URL without certificates.
func errNeedCert(flagPrefix, raw string) error {
	return fmt.Errorf("TLS key/cert (--%scert-file, --%skey-file) must be provided for %s with HTTPS scheme", flagPrefix, flagPrefix, raw)
}

// tlsSetup is the member's TLS, from its flags.
type tlsSetup struct {
	client     *tls.Config // https client listeners; nil: none
	peerServer *tls.Config // https peer listeners; nil: none
	peerClient *tls.Config // dialing https peers; nil: plain http only
}

// peerTransport is the HTTP transport of member-to-member requests.
func (t tlsSetup) peerTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if t.peerClient != nil {
		// Its own copy: an HTTP/2-capable transport adds "h2" to the
		// config's NextProtos, which must not leak into the raft
		// transport's HTTP/1.1 streams.
		tr.TLSClientConfig = t.peerClient.Clone()
	}
	return tr
}

// setupTLS builds the TLS configurations etcd's flags ask for: auto TLS
// certificates are made under <data-dir>/fixtures/{client,peer}; an https
// URL without certificates is refused, certificates with only http URLs
// are ignored with a warning, as etcd does.
func setupTLS(cfg Config) (tlsSetup, error) {
	lg := cfg.Logger
	var out tlsSetup
	hasScheme := func(urls []string, schemes ...string) bool {
		for _, raw := range urls {
			if u, err := url.Parse(raw); err == nil && slices.Contains(schemes, u.Scheme) {
				return true
			}
		}
		return false
	}
	client, err := autoTLS(lg, cfg.ClientTLS, filepath.Join(cfg.DataDir, "fixtures", "client"), cfg.ListenClientURLs, cfg.SelfSignedCertValidity)
	if err != nil {
		return out, err
	}
	switch {
	case hasScheme(cfg.ListenClientURLs, "https", "unixs"):
		if client.Empty() {
			for _, raw := range cfg.ListenClientURLs {
				if hasScheme([]string{raw}, "https", "unixs") {
					return out, errNeedCert("", "client url "+raw)
				}
			}
		}
		if out.client, err = client.ServerConfig(); err != nil {
			return out, err
		}
	case !client.Empty():
		lg.Warn("scheme is HTTP while key and cert files are present; ignoring key and cert files", zap.Strings("client-urls", cfg.ListenClientURLs))
	}
	peer, err := autoTLS(lg, cfg.PeerTLS, filepath.Join(cfg.DataDir, "fixtures", "peer"), cfg.ListenPeerURLs, cfg.SelfSignedCertValidity)
	if err != nil {
		return out, err
	}
	if hasScheme(cfg.ListenPeerURLs, "https") {
		if peer.Empty() {
			return out, errNeedCert("peer-", "peer url "+strings.Join(cfg.ListenPeerURLs, ","))
		}
		if out.peerServer, err = peer.ServerConfig(); err != nil {
			return out, err
		}
		if !cfg.PeerSkipClientSANVerify {
			out.peerServer = checkPeerSANs(out.peerServer)
		}
	} else if !peer.Empty() {
		lg.Warn("scheme is HTTP while key and cert files are present; ignoring key and cert files", zap.Strings("peer-urls", cfg.ListenPeerURLs))
	}
	if !peer.Empty() {
		if out.peerClient, err = peer.ClientConfig(); err != nil {
			return out, err
		}
	}
	return out, nil
}
